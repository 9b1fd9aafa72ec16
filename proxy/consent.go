package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/scope"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
)

// loggedInPending loads a pending request for the consent step: it must
// belong to this browser and have passed the upstream login.
func (g *Gateway) loggedInPending(w http.ResponseWriter, r *http.Request, id string) (*pending, *clients.Client, bool) {
	browser, err := g.sessions.Load(r, g.cookieName())
	if err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return nil, nil, false
	}
	if id == "" || !browser.HasPending(id) {
		g.errorPage(w, r, http.StatusBadRequest, "error.expired", "")
		return nil, nil, false
	}
	p, err := g.loadPending(r, id)
	if err != nil {
		g.pendingErrorPage(w, r, err)
		return nil, nil, false
	}
	client := g.clients.Lookup(p.ClientID)
	if !p.LoggedIn || p.PickPatient || client == nil {
		g.errorPage(w, r, http.StatusBadRequest, "error.expired", "")
		return nil, nil, false
	}
	return p, client, true
}

func (g *Gateway) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("request")
	p, client, ok := g.loggedInPending(w, r, id)
	if !ok {
		return
	}
	requested, _ := scope.ParseList(p.Scope)
	lang := consent.Language(r)
	body, err := g.pages.RenderConsent(lang, consent.ConsentView{
		App:          appInfo(client),
		PatientName:  p.PatientName,
		Requested:    requested,
		Required:     client.Required,
		RefreshUntil: refreshEnd(g.now(), client),
		Action:       g.base + PathConsent,
		RequestID:    id,
		CSRF:         p.CSRF,
		Page:         r.URL,
	})
	if err != nil {
		g.log.ErrorContext(r.Context(), "render consent page", "request_id", RequestID(r.Context()), "err", err)
		g.errorPage(w, r, http.StatusInternalServerError, "error.internal", "")
		return
	}
	pageHeaders(w.Header(), origin(p.RedirectURI))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
	g.metrics.ConsentDecisions.WithLabelValues("shown").Inc()
}

// refreshEnd is the date persistent access would end if the app never
// refreshed: the absolute lifetime when set, the idle timeout otherwise.
func refreshEnd(now time.Time, c *clients.Client) time.Time {
	if c.Policy.AbsoluteLifetime > 0 {
		return now.Add(c.Policy.AbsoluteLifetime)
	}
	return now.Add(c.Policy.IdleTimeout)
}

// origin returns scheme://host of a URL for the CSP form-action list, or ""
// for a URI whose scheme a CSP source cannot name safely.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		if err == nil && u.Scheme != "" {
			return u.Scheme + ":"
		}
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// handleConsentDecision takes the patient's Allow or Deny. Cross-origin
// posts are rejected before it runs, by http.CrossOriginProtection. The
// form must also carry the request's own token. The pending request is
// consumed, so a decision counts once.
func (g *Gateway) handleConsentDecision(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		g.errorPage(w, r, formErrorStatus(err), "error.bad_request", "")
		return
	}
	id := r.PostForm.Get("request")
	p, client, ok := g.loggedInPending(w, r, id)
	if !ok {
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(p.CSRF)) != 1 {
		g.log.WarnContext(r.Context(), "consent form token mismatch", "request_id", RequestID(r.Context()), "client_id", p.ClientID)
		g.errorPage(w, r, http.StatusForbidden, "error.expired", "")
		return
	}
	decision := r.PostForm.Get("decision")
	if decision != "allow" && decision != "deny" {
		g.errorPage(w, r, http.StatusBadRequest, "error.bad_request", "")
		return
	}
	if _, err := g.store.TakePending(r.Context(), id); err != nil {
		g.pendingErrorPage(w, r, err) // ErrNotFound here means a second submit
		return
	}
	browser, err := g.sessions.Load(r, g.cookieName())
	if err == nil {
		g.forget(r, w, browser, id)
	}

	requested, _ := scope.ParseList(p.Scope)
	audit := []any{"request_id", RequestID(r.Context()), "client_id", p.ClientID, "sub", p.Subject}
	if decision == "deny" {
		g.log.InfoContext(r.Context(), "consent denied", append(audit, "event", "consent_denied")...)
		g.metrics.ConsentDecisions.WithLabelValues("denied").Inc()
		g.redirectError(w, r, p.RedirectURI, p.State, newError(errAccessDenied, "the user denied access"))
		return
	}
	checked := map[string]bool{}
	for _, s := range r.PostForm["scope"] {
		checked[s] = true
	}
	unchecked := map[string]bool{}
	for _, s := range requested {
		if !checked[s.Raw] && !client.Required.Covers(s) {
			unchecked[s.Raw] = true
		}
	}
	granted := consent.Decide(requested, unchecked)
	event, outcome := "consent_granted", "allowed"
	if len(granted) < len(requested) {
		event, outcome = "consent_partly_granted", "partly_allowed"
	}
	lang := consent.Language(r)
	if err := g.saveConsent(r, p, client, granted, lang); err != nil {
		g.redirectError(w, r, p.RedirectURI, p.State, g.storeFailure(err))
		return
	}
	code, err := g.issueCode(r, p, client, granted)
	if err != nil {
		g.redirectError(w, r, p.RedirectURI, p.State, g.storeFailure(err))
		return
	}
	g.log.InfoContext(r.Context(), "consent given", append(audit, "event", event, "scope", granted.String(),
		"wording", g.pages.Catalog().Version(lang))...)
	g.metrics.ConsentDecisions.WithLabelValues(outcome).Inc()
	g.redirectToClient(w, r, p.RedirectURI, p.State, url.Values{"code": {code}})
}

// appInfo returns what the patient pages show about a client.
func appInfo(c *clients.Client) consent.App {
	return consent.App{Name: c.Name, LogoURL: c.Info.LogoURL, Publisher: c.Info.Publisher, HomePage: c.Info.HomePage,
		PrivacyPolicyURL: c.Info.PrivacyPolicyURL, TermsURL: c.Info.TermsURL, Reviewed: c.Info.Reviewed}
}

// saveConsent records the patient's decision: what was granted, when,
// until when it is remembered, and which wording was shown. The record
// is kept as long as the patient's /apps page may need it.
func (g *Gateway) saveConsent(r *http.Request, p *pending, client *clients.Client, granted scope.List, lang string) error {
	now := g.now()
	rec := consent.Record{ClientID: client.ID, Subject: p.Subject, Patient: p.Patient, Scope: granted.String(),
		Given: now.UTC(), Lang: lang, Wording: g.pages.Catalog().Version(lang)}
	keep := g.cfg.Tokens.AccessTokenLifetime
	if client.RememberConsent > 0 {
		rec.Remember = now.Add(client.RememberConsent).UTC()
		keep = max(keep, client.RememberConsent)
	}
	if granted.Has(scope.KindOfflineAccess) {
		keep = max(keep, refreshEnd(now, client).Sub(now))
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return g.store.SaveConsent(r.Context(), p.Subject, client.ID, b, keep)
}

// issueCode stores an authorization code for the granted scopes and
// returns the code.
func (g *Gateway) issueCode(r *http.Request, p *pending, client *clients.Client, granted scope.List) (string, error) {
	gid := token.NewGrantID()
	code, hash := token.NewHandle(token.CodePrefix, gid)
	grant := store.Grant{
		ClientID: p.ClientID, Scope: granted.String(), Subject: p.Subject, Name: p.Name,
		Audience: p.Audience, Nonce: p.Nonce, AuthTime: p.AuthTime,
		RedirectURI: p.RedirectURI, CodeChallenge: p.CodeChallenge,
	}
	if needsPatient(granted) || (p.Launch != nil && granted.HasLaunch("")) {
		grant.Patient = p.Patient
	}
	if p.Launch != nil && granted.HasLaunch("") {
		b, err := json.Marshal(p.Launch.tokenContext())
		if err != nil {
			return "", err
		}
		grant.Context = string(b)
	}
	if granted.Has(scope.KindFHIRUser) {
		grant.FHIRUser = p.FHIRUser
	}
	offline, online := granted.Has(scope.KindOfflineAccess), granted.Has(scope.KindOnlineAccess)
	if online && !offline {
		grant.Upstream = p.Upstream
	}
	terms := store.RefreshTerms{
		Issue:       offline || (online && grant.Upstream != ""),
		Rotate:      client.Policy.Rotation != nil && *client.Policy.Rotation,
		GraceWindow: client.Policy.GraceWindow,
		IdleTimeout: client.Policy.IdleTimeout,
	}
	if client.Policy.AbsoluteLifetime > 0 {
		terms.Expires = g.now().Add(client.Policy.AbsoluteLifetime)
	}
	if err := g.store.SaveCode(r.Context(), gid, hash, grant, terms, g.cfg.Tokens.CodeLifetime); err != nil {
		return "", err
	}
	if terms.Issue {
		if err := g.store.AddFamily(r.Context(), p.Subject, gid); err != nil {
			return "", err
		}
	}
	return code, nil
}
