package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/scope"
	"github.com/smartgate/smartgate/internal/session"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
)

// purposeApps marks a pending request that signs a patient in to /apps
// rather than authorizing an app.
const purposeApps = "apps"

// handleApps shows the signed-in patient every app that holds access to
// their records (the SMART management_endpoint), or starts the sign-in.
func (g *Gateway) handleApps(w http.ResponseWriter, r *http.Request) {
	browser, err := g.sessions.Load(r, g.cookieName())
	if err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	user, ok := browser.User()
	if !ok {
		g.startAppsLogin(w, r, browser)
		return
	}
	lang := consent.Language(r)
	apps, err := g.appsOf(r, user.Subject)
	if err != nil {
		g.pendingErrorPage(w, r, err)
		return
	}
	notice := ""
	if id := r.URL.Query().Get("revoked"); id != "" {
		name := id
		if c := g.clients.Lookup(id); c != nil {
			name = c.Name
		}
		notice = g.pages.Catalog().Text(lang, "apps.revoked", name)
	}
	body, err := g.pages.RenderApps(lang, consent.AppsView{
		UserName: user.Name, Apps: apps, Notice: notice, CSRF: user.CSRF,
		Action: g.base + PathAppsRevoke, SignOutAction: g.base + PathAppsSignOut, Page: pageURL(r),
	})
	if err != nil {
		g.log.ErrorContext(r.Context(), "render apps page", "request_id", RequestID(r.Context()), "err", err)
		g.errorPage(w, r, http.StatusInternalServerError, "error.internal", "")
		return
	}
	pageHeaders(w.Header(), "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// pageURL is the request URL without the one-time notice parameters, for
// the language links.
func pageURL(r *http.Request) *url.URL {
	u := *r.URL
	q := u.Query()
	q.Del("revoked")
	u.RawQuery = q.Encode()
	return &u
}

// appsOf gathers what each app holds: live refresh token families and
// remembered consents, one entry per app.
func (g *Gateway) appsOf(r *http.Request, subject string) ([]consent.AppAccess, error) {
	fams, err := g.store.Families(r.Context(), subject)
	if err != nil {
		return nil, err
	}
	records, err := g.store.Consents(r.Context(), subject)
	if err != nil {
		return nil, err
	}
	now := g.now()
	byClient := map[string]*consent.AppAccess{}
	entry := func(clientID string) *consent.AppAccess {
		if a, ok := byClient[clientID]; ok {
			return a
		}
		c := g.clients.Lookup(clientID)
		if c == nil {
			return nil // a client removed from the registry holds nothing usable
		}
		a := &consent.AppAccess{ClientID: clientID, App: appInfo(c)}
		byClient[clientID] = a
		return a
	}
	for _, f := range fams {
		a := entry(f.ClientID)
		if a == nil {
			continue
		}
		granted, _ := scope.ParseList(f.Scope)
		a.Granted = mergeScopes(a.Granted, granted)
		if a.Since.IsZero() || f.Created.Before(a.Since) {
			a.Since = f.Created
		}
		if f.Expires.After(a.Until) {
			a.Until, a.Idle = f.Expires, true
		}
	}
	for clientID, raw := range records {
		var rec consent.Record
		if json.Unmarshal(raw, &rec) != nil || !rec.Remember.After(now) {
			continue
		}
		a := entry(clientID)
		if a == nil {
			continue
		}
		granted, _ := scope.ParseList(rec.Scope)
		a.Granted = mergeScopes(a.Granted, granted)
		a.Remembered = rec.Remember
		if a.Since.IsZero() || rec.Given.Before(a.Since) {
			a.Since = rec.Given
		}
	}
	out := make([]consent.AppAccess, 0, len(byClient))
	for _, a := range byClient {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App.Name < out[j].App.Name })
	return out, nil
}

// mergeScopes appends the scopes of b that a lacks.
func mergeScopes(a, b scope.List) scope.List {
	seen := map[string]bool{}
	for _, s := range a {
		seen[s.Raw] = true
	}
	for _, s := range b {
		if !seen[s.Raw] {
			a = append(a, s)
			seen[s.Raw] = true
		}
	}
	return a
}

// startAppsLogin sends the patient to the upstream to sign in to /apps.
func (g *Gateway) startAppsLogin(w http.ResponseWriter, r *http.Request, browser *session.Browser) {
	id := token.RandomString(32)
	p := pending{
		Purpose: purposeApps, Lang: r.URL.Query().Get("lang"),
		Login:   upstream.Login{State: id, Nonce: token.RandomString(24), Verifier: token.RandomString(48)},
		Created: g.now().UTC(),
	}
	if err := g.savePending(r, id, &p, true); err != nil {
		g.pendingErrorPage(w, r, err)
		return
	}
	browser.AddPending(id)
	if err := browser.Save(r, w); err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.upstream.AuthCodeURL(p.Login), http.StatusFound)
}

// finishAppsLogin signs the patient in to /apps after the upstream login.
func (g *Gateway) finishAppsLogin(w http.ResponseWriter, r *http.Request, browser *session.Browser, id string, p *pending) {
	_, _ = g.store.TakePending(r.Context(), id)
	browser.RemovePending(id)
	q := r.URL.Query()
	if q.Get("error") != "" {
		g.errorPage(w, r, http.StatusBadRequest, "error.login_failed", "")
		return
	}
	ident, err := g.upstream.Callback(r.Context(), p.Login, q.Get("code"), q.Get("iss"))
	if err != nil {
		g.log.InfoContext(r.Context(), "apps sign-in failed", "request_id", RequestID(r.Context()), "err", err)
		status, msg := http.StatusBadRequest, "error.login_failed"
		if isUnavailable(err) {
			status, msg = http.StatusServiceUnavailable, "error.unavailable"
		}
		g.errorPage(w, r, status, msg, "")
		return
	}
	if err := browser.Regenerate(r.Context()); err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	browser.SetUser(session.User{Subject: ident.Subject, Name: ident.Name, Patient: ident.Patient,
		CSRF: token.RandomString(24)})
	if err := browser.Save(r, w); err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	target := g.base + PathApps
	if p.Lang != "" {
		target += "?lang=" + url.QueryEscape(p.Lang)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// appsUser returns the signed-in user of a POST to /apps/..., after
// checking the form's token. It writes the error page itself.
func (g *Gateway) appsUser(w http.ResponseWriter, r *http.Request) (*session.Browser, session.User, bool) {
	if err := r.ParseForm(); err != nil {
		g.errorPage(w, r, formErrorStatus(err), "error.bad_request", "")
		return nil, session.User{}, false
	}
	browser, err := g.sessions.Load(r, g.cookieName())
	if err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return nil, session.User{}, false
	}
	user, ok := browser.User()
	if !ok || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(user.CSRF)) != 1 {
		g.errorPage(w, r, http.StatusForbidden, "error.expired", "")
		return nil, session.User{}, false
	}
	return browser, user, true
}

// handleAppsRevoke ends an app's access: its refresh tokens stop working
// at once and its consent is forgotten, so the app must ask again.
func (g *Gateway) handleAppsRevoke(w http.ResponseWriter, r *http.Request) {
	_, user, ok := g.appsUser(w, r)
	if !ok {
		return
	}
	clientID := r.PostForm.Get("client_id")
	if g.clients.Lookup(clientID) == nil {
		g.errorPage(w, r, http.StatusBadRequest, "error.bad_request", "")
		return
	}
	n, err := g.store.RevokeClient(r.Context(), user.Subject, clientID, g.cfg.Tokens.AccessTokenLifetime)
	if err != nil {
		g.pendingErrorPage(w, r, err)
		return
	}
	g.log.InfoContext(r.Context(), "consent revoked", "request_id", RequestID(r.Context()), "event", "consent_revoked",
		"client_id", clientID, "sub", user.Subject, "families", n)
	g.metrics.ConsentDecisions.WithLabelValues("revoked").Inc()
	q := url.Values{"revoked": {clientID}}
	if l := r.PostForm.Get("lang"); l != "" {
		q.Set("lang", l)
	}
	http.Redirect(w, r, g.base+PathApps+"?"+q.Encode(), http.StatusSeeOther)
}

// handleAppsSignOut ends the /apps session.
func (g *Gateway) handleAppsSignOut(w http.ResponseWriter, r *http.Request) {
	browser, _, ok := g.appsUser(w, r)
	if !ok {
		return
	}
	browser.ClearUser()
	if err := browser.Save(r, w); err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return
	}
	lang := consent.Language(r)
	body, err := g.pages.RenderError(lang, consent.ErrorView{TitleID: "apps.title", MessageID: "apps.signed_out", Page: r.URL})
	if err != nil {
		g.errorPage(w, r, http.StatusInternalServerError, "error.internal", "")
		return
	}
	pageHeaders(w.Header(), "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

func isUnavailable(err error) bool {
	return errors.Is(err, upstream.ErrUnavailable) || errors.Is(err, store.ErrUnavailable)
}
