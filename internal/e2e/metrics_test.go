package e2e

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// TestMetricsFollowEvents checks that each series moves when its event
// happens, and that promlint finds nothing in the exposition.
func TestMetricsFollowEvents(t *testing.T) {
	e := shared(t)
	m := e.gw.Metrics
	series := map[string]prometheus.Collector{
		"consent shown":          m.ConsentDecisions.WithLabelValues("shown"),
		"consent partly allowed": m.ConsentDecisions.WithLabelValues("partly_allowed"),
		"consent denied":         m.ConsentDecisions.WithLabelValues("denied"),
		"code tokens (public)":   m.TokensIssued.WithLabelValues("authorization_code", "public"),
		"refresh tokens":         m.TokensIssued.WithLabelValues("refresh_token", "public"),
		"rotations (public)":     m.RefreshRotations.WithLabelValues("public"),
		"token requests":         m.Requests.WithLabelValues("/token", "200"),
	}
	before := map[string]float64{}
	for name, c := range series {
		before[name] = testutil.ToFloat64(c)
	}

	// One launch with a scope unchecked, its code exchange and a refresh.
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient offline_access patient/Patient.rs patient/Observation.rs")
	b := testenv.NewBrowser(t, appRedirect)
	form := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword).Form(t)
	if err := form.Uncheck("scope", "patient/Observation.rs"); err != nil {
		t.Fatal(err)
	}
	q := redirectParams(t, b.Submit(form, url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, e.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if r := refreshWith(t, e, tok.RefreshToken); r.Status != http.StatusOK {
		t.Fatalf("refresh: %d %q", r.Status, r.Error)
	}
	// And one launch the patient denies.
	l2 := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	b2 := testenv.NewBrowser(t, appRedirect)
	redirectParams(t, b2.Submit(standaloneLaunch(t, e, b2, l2, testenv.PatientUser, testenv.PatientPassword).Form(t),
		url.Values{"decision": {"deny"}}), appRedirect)

	want := map[string]float64{"consent shown": 2, "consent partly allowed": 1, "consent denied": 1,
		"code tokens (public)": 1, "refresh tokens": 1, "rotations (public)": 1, "token requests": 2}
	for name, c := range series {
		if got := testutil.ToFloat64(c) - before[name]; got != want[name] {
			t.Errorf("%s moved by %v, want %v", name, got, want[name])
		}
	}
	if n := testutil.CollectAndCount(m.RequestDuration); n == 0 {
		t.Error("no request duration series after the requests")
	}

	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
