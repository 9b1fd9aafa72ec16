package consent

import (
	"bytes"
	"fmt"
	"net/url"
	"time"

	"github.com/smartgate/smartgate/internal/scope"
)

// Record is a patient's decision about one app: what was granted, when,
// until when it skips the consent page, and which wording was shown.
type Record struct {
	ClientID string    `json:"client_id"`
	Subject  string    `json:"sub"`
	Patient  string    `json:"patient,omitempty"`
	Scope    string    `json:"scope"` // granted scopes, exactly as requested
	Given    time.Time `json:"given"`
	// Remember is when the consent stops skipping the page; zero when the
	// client does not remember consent.
	Remember time.Time `json:"remember,omitzero"`
	Lang     string    `json:"lang"`
	Wording  string    `json:"wording"` // Catalog.Version of the language shown
}

// Covers reports whether an earlier consent lets a new request skip the
// consent page: it is still remembered at now, it is for the same
// patient, and its granted scopes cover every requested scope. A request
// for anything the patient did not grant, including a scope they
// unchecked, shows the page again.
func (r *Record) Covers(requested scope.List, patient string, now time.Time) bool {
	if r == nil || r.Remember.IsZero() || !now.Before(r.Remember) || r.Patient != patient {
		return false
	}
	granted, _ := scope.ParseList(r.Scope)
	return granted.CoversAll(requested)
}

// AppAccess is one app on the patient's /apps page.
type AppAccess struct {
	ClientID string
	App      App
	Granted  scope.List
	Since    time.Time
	// Until is when access ends at the latest; Idle means it also ends
	// earlier when the app stops using it.
	Until      time.Time
	Idle       bool
	Remembered time.Time // zero when consent is not remembered
}

// AppsView is the content of the /apps page.
type AppsView struct {
	UserName      string
	Apps          []AppAccess
	Notice        string // a sentence already in the page language, or ""
	Action        string // revoke form action
	SignOutAction string
	CSRF          string
	Page          *url.URL
}

type appCard struct {
	ClientID, Name, LogoURL, Publisher string
	Since, Until, RevokeLabel          string
	Items                              []Item
}

type appsData struct {
	common
	SignedIn, Notice, Action, SignOutAction, CSRF string
	Apps                                          []appCard
}

// RenderApps renders the patient's /apps page in lang.
func (p *Pages) RenderApps(lang string, v AppsView) ([]byte, error) {
	d := appsData{
		common:        p.common(lang, "apps.title", v.Page),
		SignedIn:      p.text.Text(lang, "apps.signed_in", v.UserName),
		Notice:        v.Notice,
		Action:        v.Action,
		SignOutAction: v.SignOutAction,
		CSRF:          v.CSRF,
	}
	for _, a := range v.Apps {
		card := appCard{
			ClientID: a.ClientID, Name: a.App.Name, LogoURL: a.App.LogoURL,
			Since:       p.text.Text(lang, "apps.since", FormatDate(a.Since, lang)),
			RevokeLabel: p.text.Text(lang, "apps.revoke") + ": " + a.App.Name,
			Items:       p.text.Describe(a.Granted, lang, a.Until, nil),
		}
		if a.App.Publisher != "" {
			card.Publisher = p.text.Text(lang, "app.by", a.App.Publisher)
		}
		switch {
		case a.Until.IsZero() && !a.Remembered.IsZero():
			card.Until = p.text.Text(lang, "apps.remembered", FormatDate(a.Remembered, lang))
		case a.Idle:
			card.Until = p.text.Text(lang, "apps.until_use", FormatDate(a.Until, lang))
		default:
			card.Until = p.text.Text(lang, "apps.until", FormatDate(a.Until, lang))
		}
		d.Apps = append(d.Apps, card)
	}
	var buf bytes.Buffer
	if err := p.apps.ExecuteTemplate(&buf, "apps.html", d); err != nil {
		return nil, fmt.Errorf("render apps page: %w", err)
	}
	return buf.Bytes(), nil
}
