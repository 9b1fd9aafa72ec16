package scope

import "testing"

// A typical SMART on FHIR scope request of a patient app.
const benchScopes = "openid fhirUser launch/patient offline_access patient/Patient.rs patient/Observation.rs " +
	"patient/Condition.rs patient/MedicationRequest.rs patient/*.cruds?category=laboratory"

func BenchmarkParseList(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		list, rejected := ParseList(benchScopes)
		if len(list) == 0 || len(rejected) > 0 {
			b.Fatalf("ParseList(%q) = %v, rejected %v", benchScopes, list, rejected)
		}
	}
}

func BenchmarkListCoversAll(b *testing.B) {
	granted, _ := ParseList(benchScopes)
	requested, _ := ParseList("launch/patient patient/Observation.rs")
	b.ReportAllocs()
	for b.Loop() {
		if !granted.CoversAll(requested) {
			b.Fatal("granted scopes do not cover the narrowed request")
		}
	}
}
