package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
)

// launchContext is the context an EHR hands an app it launches: the
// patient and encounter in view and the other SMART launch parameters. The EHR either
// registers it at POST /launch, or signs it into a launch JWT.
type launchContext struct {
	ClientID          string          `json:"client_id"`
	Patient           string          `json:"patient,omitempty"`
	Encounter         string          `json:"encounter,omitempty"`
	User              string          `json:"user,omitempty"`
	FHIRContext       json.RawMessage `json:"fhirContext,omitempty"`
	Intent            string          `json:"intent,omitempty"`
	NeedPatientBanner *bool           `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string          `json:"smart_style_url,omitempty"`
	Tenant            string          `json:"tenant,omitempty"`
}

// tokenContext is the part of a launch context that goes into token
// responses, access tokens and introspection, beside patient.
type tokenContext struct {
	Encounter         string          `json:"encounter,omitempty"`
	FHIRContext       json.RawMessage `json:"fhirContext,omitempty"`
	Intent            string          `json:"intent,omitempty"`
	NeedPatientBanner *bool           `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string          `json:"smart_style_url,omitempty"`
	Tenant            string          `json:"tenant,omitempty"`
}

func (c *launchContext) tokenContext() tokenContext {
	return tokenContext{Encounter: c.Encounter, FHIRContext: c.FHIRContext, Intent: c.Intent,
		NeedPatientBanner: c.NeedPatientBanner, SmartStyleURL: c.SmartStyleURL, Tenant: c.Tenant}
}

// check validates a launch context an EHR sent.
func (c *launchContext) check(g *Gateway) error {
	if g.clients.Lookup(c.ClientID) == nil {
		return fmt.Errorf("client_id %q is not registered", c.ClientID)
	}
	if c.Patient != "" && !upstream.ValidPatientID(c.Patient) {
		return fmt.Errorf("patient %q is not a FHIR id", c.Patient)
	}
	if c.Encounter != "" && !upstream.ValidPatientID(c.Encounter) {
		return fmt.Errorf("encounter %q is not a FHIR id", c.Encounter)
	}
	if len(c.FHIRContext) > 0 {
		var items []map[string]any
		if err := json.Unmarshal(c.FHIRContext, &items); err != nil {
			return errors.New("fhirContext must be an array of objects")
		}
		for i, it := range items {
			if it["reference"] == nil && it["canonical"] == nil && it["identifier"] == nil {
				return fmt.Errorf("fhirContext[%d] needs a reference, canonical or identifier", i)
			}
			if role, ok := it["role"].(string); ok && role == "" {
				return fmt.Errorf("fhirContext[%d].role must not be empty", i)
			}
		}
	}
	if c.SmartStyleURL != "" {
		if u, err := url.Parse(c.SmartStyleURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return errors.New("smart_style_url must be an absolute URL")
		}
	}
	if c.Tenant == "" {
		c.Tenant = g.cfg.EHR.Tenant
	}
	return nil
}

// credentialOK checks HTTP Basic credentials against a list of
// configured systems, comparing secret hashes in constant time.
func credentialOK(r *http.Request, list []config.Credential) (string, bool) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	id, err1 := url.QueryUnescape(id)
	secret, err2 := url.QueryUnescape(secret)
	if err1 != nil || err2 != nil {
		return "", false
	}
	sum := sha256.Sum256([]byte(secret))
	for _, c := range list {
		want := c.SecretSHA256
		if want == "" {
			s := sha256.Sum256([]byte(c.Secret))
			want = hex.EncodeToString(s[:])
		}
		wantBytes, err := hex.DecodeString(want)
		if c.ID == id && err == nil && subtle.ConstantTimeCompare(sum[:], wantBytes) == 1 {
			return id, true
		}
	}
	return "", false
}

// handleLaunch registers an EHR launch context and returns an opaque
// launch value that is valid once, for the configured launch lifetime.
func (g *Gateway) handleLaunch(w http.ResponseWriter, r *http.Request) {
	ehr, ok := credentialOK(r, g.cfg.EHR.LaunchClients)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="smartgate launch", charset="UTF-8"`)
		g.writeOAuthError(w, r, &oauthError{Code: errInvalidClient, Description: "EHR authentication failed",
			Status: http.StatusUnauthorized})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		e := newError(errInvalidRequest, "the request body could not be read")
		e.Status = formErrorStatus(err)
		g.writeOAuthError(w, r, e)
		return
	}
	var c launchContext
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		g.writeOAuthError(w, r, newError(errInvalidRequest, "the body must be a JSON launch context: "+err.Error()))
		return
	}
	if err := c.check(g); err != nil {
		g.writeOAuthError(w, r, newError(errInvalidRequest, err.Error()))
		return
	}
	data, _ := json.Marshal(c)
	id := token.RandomString(24)
	lifetime := g.cfg.EHR.LaunchLifetime
	if err := g.store.SaveLaunch(r.Context(), id, data, lifetime); err != nil {
		g.writeOAuthError(w, r, g.storeFailure(err))
		return
	}
	g.log.InfoContext(r.Context(), "launch context registered", "request_id", RequestID(r.Context()),
		"event", "launch_registered", "ehr", ehr, "client_id", c.ClientID)
	writeJSON(w, http.StatusCreated, map[string]any{"launch": id, "expires_in": int64(lifetime.Seconds())})
}

// errLaunch is a launch value that cannot be used; the app gets
// invalid_request.
var errLaunch = errors.New("launch is unknown, expired, already used, or for another app")

// resolveLaunch turns a launch value into its context: a registered value
// is consumed, a launch JWT is verified and its jti recorded.
func (g *Gateway) resolveLaunch(r *http.Request, value, clientID string) (*launchContext, error) {
	var c *launchContext
	if strings.Count(value, ".") == 2 {
		var err error
		if c, err = g.verifyLaunchJWT(r, value); err != nil {
			return nil, err
		}
	} else {
		data, err := g.store.TakeLaunch(r.Context(), value)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errLaunch
		}
		if err != nil {
			return nil, err
		}
		c = &launchContext{}
		if err := json.Unmarshal(data, c); err != nil {
			return nil, fmt.Errorf("decode launch context: %w", err)
		}
	}
	if c.ClientID != clientID {
		return nil, errLaunch
	}
	return c, nil
}

// launchClaims are the claims of a launch JWT: the context plus the JWT
// claims that limit its use.
type launchClaims struct {
	launchContext
	jwt.Claims
}

// verifyLaunchJWT checks a launch JWT signed by the EHR: signature by a
// configured key, audience the gateway, not expired, at most an hour
// long, and a jti not seen before.
func (g *Gateway) verifyLaunchJWT(r *http.Request, raw string) (*launchContext, error) {
	if len(raw) > 16<<10 {
		return nil, errLaunch
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384})
	if err != nil || len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: not a signed JWT", errLaunch)
	}
	keys, err := g.launchKeys(r)
	if err != nil {
		return nil, err
	}
	candidates := keys.Key(tok.Headers[0].KeyID)
	if len(candidates) != 1 {
		return nil, fmt.Errorf("%w: unknown key id %q", errLaunch, tok.Headers[0].KeyID)
	}
	var c launchClaims
	if err := tok.Claims(candidates[0].Key, &c); err != nil {
		return nil, fmt.Errorf("%w: bad signature", errLaunch)
	}
	now := g.now()
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{g.issuer}, Time: now}, time.Minute); err != nil {
		return nil, fmt.Errorf("%w: %v", errLaunch, err)
	}
	if c.Expiry == nil || c.Expiry.Time().After(now.Add(time.Hour)) || c.ID == "" {
		return nil, fmt.Errorf("%w: a launch JWT needs exp within an hour and a jti", errLaunch)
	}
	fresh, err := g.store.ClaimJTI(r.Context(), "launch", c.ID, c.Expiry.Time().Sub(now)+time.Minute)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, fmt.Errorf("%w: jti already used", errLaunch)
	}
	lc := c.launchContext
	if err := lc.check(g); err != nil {
		return nil, fmt.Errorf("%w: %v", errLaunch, err)
	}
	return &lc, nil
}

// launchKeys returns the EHR's launch JWT keys: inline, or fetched from
// launch_jwks_uri and kept for five minutes.
func (g *Gateway) launchKeys(r *http.Request) (*jose.JSONWebKeySet, error) {
	if set := config.ParseJWKS(g.cfg.EHR.LaunchJWKS); set != nil {
		return set, nil
	}
	uri := g.cfg.EHR.LaunchJWKSURI
	if uri == "" {
		return nil, fmt.Errorf("%w: no launch JWT keys are configured", errLaunch)
	}
	g.launchMu.Lock()
	defer g.launchMu.Unlock()
	if g.launchSet != nil && g.now().Before(g.launchSetExpires) {
		return g.launchSet, nil
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: launch keys unreachable: %v", errLaunch, err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&set) != nil {
		return nil, fmt.Errorf("%w: launch keys unreadable (status %d)", errLaunch, resp.StatusCode)
	}
	g.launchSet, g.launchSetExpires = &set, g.now().Add(5*time.Minute)
	return &set, nil
}
