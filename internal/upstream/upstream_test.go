package upstream

import "testing"

func TestFHIRUser(t *testing.T) {
	templates := []string{"Patient/{patient_id}", "Practitioner/{practitioner_id}"}
	cases := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"patient claim", map[string]any{"patient_id": "p-1"}, "Patient/p-1"},
		{"first template wins", map[string]any{"patient_id": "p-1", "practitioner_id": "d-2"}, "Patient/p-1"},
		{"falls through to practitioner", map[string]any{"practitioner_id": "d-2"}, "Practitioner/d-2"},
		{"one-element array", map[string]any{"patient_id": []any{"p-3"}}, "Patient/p-3"},
		{"two-element array is ambiguous", map[string]any{"patient_id": []any{"a", "b"}}, ""},
		{"not a FHIR id", map[string]any{"patient_id": "../Observation/1"}, ""},
		{"injection attempt", map[string]any{"patient_id": "1?_format=xml"}, ""},
		{"number claim", map[string]any{"patient_id": 42.0}, ""},
		{"no claims", map[string]any{}, ""},
		{"too long", map[string]any{"patient_id": string(make([]byte, 65))}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := FHIRUser(templates, tc.claims); got != tc.want {
				t.Errorf("FHIRUser = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidPatientID(t *testing.T) {
	for id, want := range map[string]bool{"pat-alice-123": true, "a.b": true, "": false, "a/b": false, "a b": false} {
		if got := ValidPatientID(id); got != want {
			t.Errorf("ValidPatientID(%q) = %v, want %v", id, got, want)
		}
	}
}
