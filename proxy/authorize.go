package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/scope"
	"github.com/smartgate/smartgate/internal/session"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
)

// authorizeRequest is a checked authorization request.
type authorizeRequest struct {
	Client        *clients.Client
	RedirectURI   string
	State         string
	Audience      string
	CodeChallenge string
	Nonce         string
	Scopes        scope.List // scopes that may be granted, in request order
	Dropped       []string   // malformed or not allowed for this client
	Launch        string     // the EHR launch value, "" for a standalone launch
}

// authorizeError is a failed authorization request. Until the client and
// its redirect URI are verified, Page names the message shown in the
// browser and nothing is redirected (RFC 6749 §4.1.2.1). After that,
// OAuth is sent to the app's redirect URI.
type authorizeError struct {
	Page        string
	OAuth       *oauthError
	RedirectURI string
	State       string
}

var (
	pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	// nonceText bounds the OpenID Connect nonce that is copied into the ID token.
	nonceText = regexp.MustCompile(`^[\x21-\x7e]{1,512}$`)
)

// single returns the only value of a parameter. ok is false when the
// parameter is repeated, which RFC 6749 §3.1 forbids.
func single(form url.Values, name string) (v string, ok bool) {
	vs := form[name]
	switch len(vs) {
	case 0:
		return "", true
	case 1:
		return vs[0], true
	}
	return "", false
}

// parseAuthorize checks an authorization request in the order RFC 6749
// and SMART require: client and redirect URI first, then the rest.
func parseAuthorize(form url.Values, reg *clients.Registry, fhirBases map[string]bool) (*authorizeRequest, *authorizeError) {
	clientID, ok := single(form, "client_id")
	if !ok || clientID == "" {
		return nil, &authorizeError{Page: "error.invalid_client"}
	}
	client := reg.Lookup(clientID)
	if client == nil {
		return nil, &authorizeError{Page: "error.invalid_client"}
	}
	redirectURI, ok := single(form, "redirect_uri")
	if !ok || redirectURI == "" || !client.RedirectURIAllowed(redirectURI) {
		return nil, &authorizeError{Page: "error.invalid_redirect"}
	}
	state, ok := single(form, "state")
	if !ok || len(state) > maxStateBytes {
		// The state cannot be echoed, so the app could not match a redirect.
		return nil, &authorizeError{Page: "error.bad_request"}
	}
	fail := func(code, description string) (*authorizeRequest, *authorizeError) {
		return nil, &authorizeError{OAuth: newError(code, description), RedirectURI: redirectURI, State: state}
	}
	for name, vs := range form {
		if len(vs) > 1 {
			return fail(errInvalidRequest, fmt.Sprintf("parameter %s is repeated", name))
		}
	}
	if state == "" {
		return fail(errInvalidRequest, "state is required")
	}
	switch rt := form.Get("response_type"); rt {
	case "code":
	case "":
		return fail(errInvalidRequest, "response_type is required")
	default:
		return fail(errUnsupportedResponseType, "only response_type=code is supported")
	}
	switch m := form.Get("code_challenge_method"); m {
	case "S256":
	case "":
		return fail(errInvalidRequest, "PKCE is required: send code_challenge with code_challenge_method=S256")
	default:
		return fail(errInvalidRequest, "code_challenge_method must be S256")
	}
	challenge := form.Get("code_challenge")
	if !pkceChallenge.MatchString(challenge) {
		return fail(errInvalidRequest, "code_challenge must be the base64url SHA-256 of the code verifier")
	}
	aud := form.Get("aud")
	if aud == "" {
		aud = form.Get("resource") // RFC 8707, which SMART accepts as a synonym
	}
	if aud == "" {
		return fail(errInvalidRequest, "aud is required: send the FHIR base URL the app wants to reach")
	}
	if !fhirBases[strings.TrimSuffix(aud, "/")] {
		return fail(errInvalidRequest, "aud is not a FHIR server this gateway protects")
	}
	launch := form.Get("launch")
	if len(launch) > 16<<10 {
		return fail(errInvalidRequest, "launch is too long")
	}
	if form.Get("prompt") == "none" {
		return fail(errInteractionRequired, "this gateway always asks the user to sign in and consent")
	}
	nonce := form.Get("nonce")
	if nonce != "" && !nonceText.MatchString(nonce) {
		return fail(errInvalidRequest, "nonce must be 1 to 512 visible ASCII characters")
	}
	req := &authorizeRequest{
		Client: client, RedirectURI: redirectURI, State: state, Audience: strings.TrimSuffix(aud, "/"),
		CodeChallenge: challenge, Nonce: nonce, Launch: launch,
	}
	req.Scopes, req.Dropped = grantableScopes(form.Get("scope"), client, launch != "")
	if len(req.Scopes) == 0 {
		return fail(errInvalidScope, "none of the requested scopes can be granted to this client")
	}
	if launch != "" && !req.Scopes.HasLaunch("") {
		return fail(errInvalidScope, "an EHR launch needs the launch scope")
	}
	return req, nil
}

// grantableScopes parses the scope parameter and keeps, in request order,
// the scopes the client may be granted. Malformed scopes, scopes no
// pattern of the client covers, and a bare launch outside an EHR launch
// are returned as dropped: SMART lets a server grant less than asked.
func grantableScopes(param string, client *clients.Client, ehrLaunch bool) (kept scope.List, dropped []string) {
	requested, rejected := scope.ParseList(param)
	dropped = rejected
	allowed, notAllowed := requested.Allowed(client.Allowed)
	for _, s := range notAllowed {
		dropped = append(dropped, s.Raw)
	}
	for _, s := range allowed {
		if s.Kind == scope.KindLaunch && s.Context == "" && !ehrLaunch {
			dropped = append(dropped, s.Raw)
			continue
		}
		kept = append(kept, s)
	}
	return kept, dropped
}

// pending is an authorization request between /authorize and the consent
// decision, stored in Redis under its id. The id is also the upstream
// state parameter.
type pending struct {
	Purpose       string         `json:"purpose,omitempty"` // "" for an app's authorization, purposeApps for /apps
	Lang          string         `json:"lang,omitempty"`
	ClientID      string         `json:"client_id,omitempty"`
	RedirectURI   string         `json:"redirect_uri"`
	State         string         `json:"state"`
	Audience      string         `json:"aud"`
	CodeChallenge string         `json:"code_challenge"`
	Nonce         string         `json:"nonce,omitempty"`
	Scope         string         `json:"scope"`
	Login         upstream.Login `json:"login"`
	Created       time.Time      `json:"created"`

	// Set by the callback once the user has logged in upstream.
	LoggedIn bool   `json:"logged_in,omitempty"`
	Subject  string `json:"sub,omitempty"`
	Patient  string `json:"patient,omitempty"`
	FHIRUser string `json:"fhir_user,omitempty"`
	Name     string `json:"name,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
	CSRF     string `json:"csrf,omitempty"`
	// Upstream is the identity provider's refresh token, sealed, kept when
	// the app asked for online_access.
	Upstream string `json:"upstream,omitempty"`
	// Launch is the EHR launch context of an EHR launch.
	Launch *launchContext `json:"launch,omitempty"`
	// PatientName is the display name of the patient whose records are
	// asked for: the user's own, or the one picked in the patient picker.
	PatientName string `json:"patient_name,omitempty"`
	// PickPatient is set while a clinician must pick a patient.
	PickPatient bool `json:"pick_patient,omitempty"`
}

func (g *Gateway) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		g.errorPage(w, r, formErrorStatus(err), "error.bad_request", "")
		return
	}
	form := r.Form
	if r.Method == http.MethodPost {
		form = r.PostForm // SMART's POST authorization: parameters in the body only
	}
	req, aerr := parseAuthorize(form, g.clients, g.fhirBases)
	if aerr != nil {
		if aerr.Page != "" {
			g.log.InfoContext(r.Context(), "authorization request rejected", "request_id", RequestID(r.Context()),
				"reason", aerr.Page)
			g.errorPage(w, r, http.StatusBadRequest, aerr.Page, "")
			return
		}
		g.redirectError(w, r, aerr.RedirectURI, aerr.State, aerr.OAuth)
		return
	}

	var launchCtx *launchContext
	if req.Launch != "" {
		c, err := g.resolveLaunch(r, req.Launch, req.Client.ID)
		if err != nil {
			if errors.Is(err, errLaunch) {
				e := newError(errInvalidRequest, "the launch value is unknown, expired, already used, or for another app")
				e.Cause = err
				g.redirectError(w, r, req.RedirectURI, req.State, e)
				return
			}
			g.redirectError(w, r, req.RedirectURI, req.State, g.storeFailure(err))
			return
		}
		launchCtx = c
	}

	id := token.RandomString(32)
	p := pending{
		Launch:   launchCtx,
		ClientID: req.Client.ID, RedirectURI: req.RedirectURI, State: req.State, Audience: req.Audience,
		CodeChallenge: req.CodeChallenge, Nonce: req.Nonce, Scope: req.Scopes.String(),
		Login:   upstream.Login{State: id, Nonce: token.RandomString(24), Verifier: token.RandomString(48)},
		Created: g.now().UTC(),
	}
	if err := g.savePending(r, id, &p, true); err != nil {
		g.redirectError(w, r, req.RedirectURI, req.State, g.storeFailure(err))
		return
	}
	browser, err := g.sessions.Load(r, g.cookieName())
	if err != nil {
		g.redirectError(w, r, req.RedirectURI, req.State, g.storeFailure(err))
		return
	}
	browser.AddPending(id)
	if err := browser.Save(r, w); err != nil {
		g.redirectError(w, r, req.RedirectURI, req.State, g.storeFailure(err))
		return
	}
	g.log.DebugContext(r.Context(), "authorization request accepted", "request_id", RequestID(r.Context()),
		"client_id", req.Client.ID, "scope", p.Scope, "dropped", strings.Join(req.Dropped, " "))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.upstream.AuthCodeURL(p.Login), http.StatusFound)
}

func (g *Gateway) cookieName() string { return session.CookieName(g.secure) }

// savePending writes a pending request: a new one with the authorization
// lifetime, or an update that keeps its expiry.
func (g *Gateway) savePending(r *http.Request, id string, p *pending, create bool) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode authorization request: %w", err)
	}
	if create {
		return g.store.SavePending(r.Context(), id, b, g.cfg.Tokens.AuthorizationLifetime)
	}
	return g.store.UpdatePending(r.Context(), id, b)
}

func decodePending(b []byte) (*pending, error) {
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode authorization request: %w", err)
	}
	return &p, nil
}

// formErrorStatus is 413 for a body over the limit and 400 otherwise.
func formErrorStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}
