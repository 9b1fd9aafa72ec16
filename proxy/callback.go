package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/scope"
	"github.com/smartgate/smartgate/internal/session"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
)

// upstreamErrors maps an error the identity provider sent back to the
// error the app receives.
func upstreamError(code string) *oauthError {
	switch code {
	case "access_denied", "login_required", "interaction_required", "consent_required", "account_selection_required":
		return newError(errAccessDenied, "the user did not complete the sign-in")
	case "temporarily_unavailable":
		return &oauthError{Code: errTemporarilyUnavailable, Description: "the identity provider is temporarily unavailable",
			Status: http.StatusServiceUnavailable}
	}
	return &oauthError{Code: errServerError, Description: "the identity provider returned an error",
		Status: http.StatusBadGateway}
}

// handleCallback finishes the upstream login. The upstream state is the
// pending request's id, and it must be one this browser started.
func (g *Gateway) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("state")
	browser, err := g.sessions.Load(r, g.cookieName())
	if err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	if id == "" || !browser.HasPending(id) {
		g.log.InfoContext(r.Context(), "callback without a matching login", "request_id", RequestID(r.Context()))
		g.errorPage(w, r, http.StatusBadRequest, "error.expired", "")
		return
	}
	p, err := g.loadPending(r, id)
	if err != nil {
		g.pendingErrorPage(w, r, err)
		return
	}
	if p.Purpose == purposeApps {
		g.finishAppsLogin(w, r, browser, id, p)
		return
	}
	if p.LoggedIn {
		// The upstream state may be used once: a replayed callback is refused.
		g.log.WarnContext(r.Context(), "upstream state reused", "request_id", RequestID(r.Context()), "client_id", p.ClientID)
		g.errorPage(w, r, http.StatusBadRequest, "error.expired", "")
		return
	}
	if code := q.Get("error"); code != "" {
		g.finishWithError(w, r, browser, id, p, upstreamError(code))
		return
	}

	ident, err := g.upstream.Callback(r.Context(), p.Login, q.Get("code"), q.Get("iss"))
	switch {
	case errors.Is(err, upstream.ErrUnavailable):
		g.metrics.UpstreamErrors.WithLabelValues("code_exchange").Inc()
		g.finishWithError(w, r, browser, id, p, &oauthError{Code: errTemporarilyUnavailable,
			Description: "the identity provider is temporarily unavailable", Status: http.StatusServiceUnavailable, Cause: err})
		return
	case err != nil:
		g.finishWithError(w, r, browser, id, p, &oauthError{Code: errAccessDenied,
			Description: "the sign-in at the identity provider could not be verified", Status: http.StatusBadRequest, Cause: err})
		return
	}

	requested, _ := scope.ParseList(p.Scope)
	patient, patientName := ident.Patient, ident.Name
	if p.Launch != nil && p.Launch.Patient != "" {
		// An EHR launch names the patient in view; the user is a clinician.
		patient, patientName = p.Launch.Patient, ""
	}
	if needsPatient(requested) && !upstream.ValidPatientID(patient) && g.pickerFor(ident) {
		p.LoggedIn, p.PickPatient = true, true
		p.Subject, p.FHIRUser, p.Name = ident.Subject, ident.FHIRUser, ident.Name
		p.AuthTime = ident.AuthTime.Unix()
		p.CSRF = token.RandomString(24)
		g.continueAfterLogin(w, r, browser, id, p, PathPicker)
		return
	}
	if needsPatient(requested) && !upstream.ValidPatientID(patient) {
		g.log.InfoContext(r.Context(), "user has no patient record", "request_id", RequestID(r.Context()),
			"client_id", p.ClientID, "sub", ident.Subject)
		returnURL := g.clientRedirectURL(p.RedirectURI, p.State, url.Values{
			"error": {errAccessDenied}, "error_description": {"the user has no patient record"}})
		g.forget(r, w, browser, id)
		g.errorPage(w, r, http.StatusForbidden, "error.no_patient", returnURL)
		return
	}

	p.LoggedIn = true
	p.Subject, p.Patient, p.FHIRUser, p.Name = ident.Subject, patient, ident.FHIRUser, ident.Name
	p.PatientName = patientName
	p.AuthTime = ident.AuthTime.Unix()
	if requested.Has(scope.KindOnlineAccess) {
		// Online access lives as long as the upstream session, which the
		// provider's refresh token stands for. Without one it cannot be
		// offered, so the request goes on without it.
		if ident.RefreshToken != "" {
			p.Upstream = g.sealer.Seal(ident.RefreshToken)
		} else {
			requested = withoutKind(requested, scope.KindOnlineAccess)
			p.Scope = requested.String()
		}
	}
	if g.rememberedConsent(w, r, browser, id, p, requested) {
		return
	}
	p.CSRF = token.RandomString(24)
	g.continueAfterLogin(w, r, browser, id, p, PathConsent)
}

// continueAfterLogin saves the logged-in pending request, gives the
// browser a new session id, and sends it to the next page of the flow.
func (g *Gateway) continueAfterLogin(w http.ResponseWriter, r *http.Request, browser *session.Browser, id string, p *pending,
	next string) {
	if err := g.savePending(r, id, p, false); err != nil {
		g.pendingErrorPage(w, r, err)
		return
	}
	// A new session id after login: an id planted before it is worthless.
	if err := browser.Regenerate(r.Context()); err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	if err := browser.Save(r, w); err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.base+next+"?request="+url.QueryEscape(id), http.StatusSeeOther)
}

// needsPatient reports whether the request can only be granted with a
// patient in context: patient/ scopes or launch/patient.
func needsPatient(l scope.List) bool {
	return l.HasLevel(scope.LevelPatient) || l.HasLaunch("patient")
}

func (g *Gateway) loadPending(r *http.Request, id string) (*pending, error) {
	b, err := g.store.LoadPending(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return decodePending(b)
}

// pendingErrorPage shows why a pending request cannot go on.
func (g *Gateway) pendingErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		g.errorPage(w, r, http.StatusBadRequest, "error.expired", "")
	case errors.Is(err, store.ErrUnavailable):
		g.log.ErrorContext(r.Context(), "state store unavailable", "request_id", RequestID(r.Context()), "err", err)
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
	default:
		g.log.ErrorContext(r.Context(), "pending request unreadable", "request_id", RequestID(r.Context()), "err", err)
		g.errorPage(w, r, http.StatusInternalServerError, "error.internal", "")
	}
}

// finishWithError ends a pending request and redirects the error to the app.
func (g *Gateway) finishWithError(w http.ResponseWriter, r *http.Request, browser *session.Browser, id string, p *pending, e *oauthError) {
	_, _ = g.store.TakePending(r.Context(), id)
	g.forget(r, w, browser, id)
	g.redirectError(w, r, p.RedirectURI, p.State, e)
}

// forget removes a request id from the browser session.
func (g *Gateway) forget(r *http.Request, w http.ResponseWriter, browser *session.Browser, id string) {
	browser.RemovePending(id)
	if err := browser.Save(r, w); err != nil {
		g.log.WarnContext(r.Context(), "session not saved", "request_id", RequestID(r.Context()), "err", err)
	}
}

// rememberedConsent skips the consent page when the client remembers
// consent and an unexpired earlier consent of this user covers the
// request. It reports whether it wrote the response.
func (g *Gateway) rememberedConsent(w http.ResponseWriter, r *http.Request, browser *session.Browser, id string, p *pending,
	requested scope.List) bool {
	client := g.clients.Lookup(p.ClientID)
	if client == nil || client.RememberConsent <= 0 {
		return false
	}
	raw, err := g.store.Consent(r.Context(), p.Subject, client.ID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			g.log.WarnContext(r.Context(), "consent record unreadable; asking again", "request_id", RequestID(r.Context()), "err", err)
		}
		return false
	}
	var rec consent.Record
	if err := json.Unmarshal(raw, &rec); err != nil || !rec.Covers(requested, p.Patient, g.now()) {
		return false
	}
	if _, err := g.store.TakePending(r.Context(), id); err != nil {
		g.pendingErrorPage(w, r, err)
		return true
	}
	g.forget(r, w, browser, id)
	code, err := g.issueCode(r, p, client, requested)
	if err != nil {
		g.redirectError(w, r, p.RedirectURI, p.State, g.storeFailure(err))
		return true
	}
	g.log.InfoContext(r.Context(), "consent remembered", "request_id", RequestID(r.Context()), "event", "consent_remembered",
		"client_id", client.ID, "sub", p.Subject, "scope", requested.String())
	g.metrics.ConsentDecisions.WithLabelValues("remembered").Inc()
	g.redirectToClient(w, r, p.RedirectURI, p.State, url.Values{"code": {code}})
	return true
}

// withoutKind returns the scopes of l that are not of kind k.
func withoutKind(l scope.List, k scope.Kind) scope.List {
	var out scope.List
	for _, s := range l {
		if s.Kind != k {
			out = append(out, s)
		}
	}
	return out
}
