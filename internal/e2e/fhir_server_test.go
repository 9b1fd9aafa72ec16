package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
)

// The FHIR server the patient picker searches, and its service token.
const fhirToken = "picker-service-token"

// fhirServer is a small FHIR server with a few patients, enough for the
// patient picker: Patient search by name, birthdate and identifier, and
// Patient read. It requires the picker's service token.
type fhirServer struct {
	URL string
}

type testPatient struct {
	ID, Given, Family, BirthDate, MRN string
}

var testPatients = []testPatient{
	{"pat-smith-1", "John", "Smith", "1970-02-03", "MRN-1001"},
	{"pat-smith-2", "Jane", "Smith", "1985-11-20", "MRN-1002"},
	{"pat-garcia-1", "Ana", "Garcia", "1990-06-15", "MRN-2001"},
}

func (p testPatient) resource() map[string]any {
	return map[string]any{"resourceType": "Patient", "id": p.ID, "birthDate": p.BirthDate, "gender": "unknown",
		"name":       []map[string]any{{"family": p.Family, "given": []string{p.Given}}},
		"identifier": []map[string]any{{"system": "urn:mrn", "value": p.MRN}}}
}

func startFHIRServer() *fhirServer {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/Patient", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var entries []map[string]any
		for _, p := range testPatients {
			name := strings.ToLower(p.Given + " " + p.Family)
			if n := q.Get("name"); n != "" && !strings.Contains(name, strings.ToLower(n)) {
				continue
			}
			if b := q.Get("birthdate"); b != "" && b != p.BirthDate {
				continue
			}
			if id := q.Get("identifier"); id != "" && !strings.HasSuffix(id, p.MRN) {
				continue
			}
			entries = append(entries, map[string]any{"resource": p.resource()})
		}
		writeFHIR(w, map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": entries})
	})
	mux.HandleFunc("GET /fhir/Patient/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, p := range testPatients {
			if p.ID == r.PathValue("id") {
				writeFHIR(w, p.resource())
				return
			}
		}
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fhirToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	services.Add(srv.Close)
	return &fhirServer{URL: srv.URL + "/fhir"}
}

func writeFHIR(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(v)
}
