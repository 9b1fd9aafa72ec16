package consent

import (
	"net/url"
	"testing"
	"time"

	"github.com/smartgate/smartgate/internal/scope"
)

func BenchmarkRenderConsent(b *testing.B) {
	pages, err := NewPages(Branding{HospitalName: "General Hospital", AccentColor: "#005ea2"}, "/static", nil)
	if err != nil {
		b.Fatalf("NewPages: %v", err)
	}
	requested, rejected := scope.ParseList("openid fhirUser launch/patient offline_access patient/Patient.rs " +
		"patient/Observation.rs patient/Condition.rs patient/MedicationRequest.rs")
	if len(rejected) > 0 {
		b.Fatalf("scopes rejected: %v", rejected)
	}
	required, _ := scope.ParseList("patient/Patient.rs")
	view := ConsentView{
		App:          App{Name: "Patient Diary", Publisher: "Example Apps"},
		PatientName:  "Ana Garcia",
		Requested:    requested,
		Required:     required,
		RefreshUntil: time.Date(2027, 3, 3, 0, 0, 0, 0, time.UTC),
		Action:       "/consent",
		RequestID:    "req-1",
		CSRF:         "csrf-token",
		Page:         &url.URL{Path: "/consent", RawQuery: "request=req-1"},
	}
	b.ReportAllocs()
	for b.Loop() {
		body, err := pages.RenderConsent("en", view)
		if err != nil || len(body) == 0 {
			b.Fatalf("RenderConsent: %d bytes, %v", len(body), err)
		}
	}
}
