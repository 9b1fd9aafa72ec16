package proxy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/upstream"
)

// PathPicker is the patient picker of a clinician's standalone launch.
const PathPicker = "/picker"

// maxPickerResults bounds one search of the patient picker.
const maxPickerResults = 20

// pickerFor reports whether a user who has no patient of their own gets
// the patient picker: a clinician (fhirUser a Practitioner or
// PractitionerRole) when a picker is configured. Patients never do.
func (g *Gateway) pickerFor(ident *upstream.Identity) bool {
	if g.cfg.FHIR.Picker.BaseURL == "" {
		return false
	}
	return strings.HasPrefix(ident.FHIRUser, "Practitioner/") || strings.HasPrefix(ident.FHIRUser, "PractitionerRole/")
}

// pickerPending loads the pending request of a picker page: it must be
// this browser's, logged in, and waiting for a patient.
func (g *Gateway) pickerPending(w http.ResponseWriter, r *http.Request, id string) (*pending, bool) {
	browser, err := g.sessions.Load(r, g.cookieName())
	if err != nil {
		g.errorPage(w, r, http.StatusServiceUnavailable, "error.unavailable", "")
		return nil, false
	}
	if id == "" || !browser.HasPending(id) {
		g.errorPage(w, r, http.StatusBadRequest, "error.expired", "")
		return nil, false
	}
	p, err := g.loadPending(r, id)
	if err != nil {
		g.pendingErrorPage(w, r, err)
		return nil, false
	}
	if !p.LoggedIn || !p.PickPatient {
		g.errorPage(w, r, http.StatusBadRequest, "error.expired", "")
		return nil, false
	}
	return p, true
}

// handlePicker shows the search form and, when search values are given,
// the matching patients.
func (g *Gateway) handlePicker(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("request")
	p, ok := g.pickerPending(w, r, id)
	if !ok {
		return
	}
	search := consent.PatientSearch{Name: q.Get("name"), BirthDate: q.Get("birthdate"), Identifier: q.Get("identifier")}
	view := consent.PickerView{AppName: p.ClientID, Search: search, Action: g.base + PathPicker, RequestID: id,
		CSRF: p.CSRF, Page: r.URL}
	if c := g.clients.Lookup(p.ClientID); c != nil {
		view.AppName = c.Name
	}
	if search != (consent.PatientSearch{}) {
		view.Searched = true
		found, err := g.searchPatients(r.Context(), search)
		if err != nil {
			g.metrics.UpstreamErrors.WithLabelValues("patient_search").Inc()
			g.log.WarnContext(r.Context(), "patient search failed", "request_id", RequestID(r.Context()), "err", err)
			view.Failed = true
		}
		view.Patients = found
	}
	lang := consent.Language(r)
	body, err := g.pages.RenderPicker(lang, view)
	if err != nil {
		g.log.ErrorContext(r.Context(), "render picker", "request_id", RequestID(r.Context()), "err", err)
		g.errorPage(w, r, http.StatusInternalServerError, "error.internal", "")
		return
	}
	pageHeaders(w.Header(), origin(p.RedirectURI))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// handlePickerChoice binds the chosen patient to the pending request, or
// ends the launch with access_denied when the clinician cancels.
func (g *Gateway) handlePickerChoice(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		g.errorPage(w, r, formErrorStatus(err), "error.bad_request", "")
		return
	}
	id := r.PostForm.Get("request")
	p, ok := g.pickerPending(w, r, id)
	if !ok {
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(p.CSRF)) != 1 {
		g.errorPage(w, r, http.StatusForbidden, "error.expired", "")
		return
	}
	if r.PostForm.Get("decision") == "cancel" {
		_, _ = g.store.TakePending(r.Context(), id)
		g.redirectError(w, r, p.RedirectURI, p.State, newError(errAccessDenied, "no patient was chosen"))
		return
	}
	chosen := r.PostForm.Get("patient")
	if !upstream.ValidPatientID(chosen) {
		g.errorPage(w, r, http.StatusBadRequest, "error.bad_request", "")
		return
	}
	// The choice is read back from the FHIR server, so a forged form
	// cannot bind a patient that does not exist.
	name, err := g.readPatient(r.Context(), chosen)
	if err != nil {
		g.log.WarnContext(r.Context(), "picked patient not readable", "request_id", RequestID(r.Context()), "err", err)
		g.errorPage(w, r, http.StatusBadGateway, "error.unavailable", "")
		return
	}
	p.Patient, p.PatientName, p.PickPatient = chosen, name, false
	if err := g.savePending(r, id, p, false); err != nil {
		g.pendingErrorPage(w, r, err)
		return
	}
	g.log.InfoContext(r.Context(), "patient picked", "request_id", RequestID(r.Context()), "event", "patient_picked",
		"client_id", p.ClientID, "sub", p.Subject, "patient", chosen)
	http.Redirect(w, r, g.base+PathConsent+"?request="+url.QueryEscape(id), http.StatusSeeOther)
}

// fhirPatient is the part of a FHIR Patient the picker shows.
type fhirPatient struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	BirthDate    string `json:"birthDate"`
	Gender       string `json:"gender"`
	Name         []struct {
		Text   string   `json:"text"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
}

func (fp fhirPatient) displayName() string {
	if len(fp.Name) == 0 {
		return fp.ID
	}
	n := fp.Name[0]
	if n.Text != "" {
		return n.Text
	}
	return strings.TrimSpace(strings.Join(n.Given, " ") + " " + n.Family)
}

// searchPatients runs a FHIR Patient search with the service credential.
func (g *Gateway) searchPatients(ctx context.Context, s consent.PatientSearch) ([]consent.PatientChoice, error) {
	q := url.Values{"_count": {fmt.Sprint(maxPickerResults)}}
	if s.Name != "" {
		q.Set("name", s.Name)
	}
	if s.BirthDate != "" {
		q.Set("birthdate", s.BirthDate)
	}
	if s.Identifier != "" {
		q.Set("identifier", s.Identifier)
	}
	var bundle struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource fhirPatient `json:"resource"`
		} `json:"entry"`
	}
	if err := g.fhirGet(ctx, "/Patient?"+q.Encode(), &bundle); err != nil {
		return nil, err
	}
	if bundle.ResourceType != "Bundle" {
		return nil, fmt.Errorf("patient search returned a %q, not a Bundle", bundle.ResourceType)
	}
	var out []consent.PatientChoice
	for _, e := range bundle.Entry {
		if e.Resource.ResourceType != "Patient" || !upstream.ValidPatientID(e.Resource.ID) {
			continue
		}
		out = append(out, consent.PatientChoice{ID: e.Resource.ID, Name: e.Resource.displayName(),
			BirthDate: e.Resource.BirthDate, Gender: e.Resource.Gender})
		if len(out) == maxPickerResults {
			break
		}
	}
	return out, nil
}

// readPatient reads one Patient and returns its display name.
func (g *Gateway) readPatient(ctx context.Context, id string) (string, error) {
	var fp fhirPatient
	if err := g.fhirGet(ctx, "/Patient/"+url.PathEscape(id), &fp); err != nil {
		return "", err
	}
	if fp.ResourceType != "Patient" || fp.ID != id {
		return "", fmt.Errorf("read Patient/%s returned %s/%s", id, fp.ResourceType, fp.ID)
	}
	return fp.displayName(), nil
}

// fhirGet reads a FHIR resource from the picker's FHIR server.
func (g *Gateway) fhirGet(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(g.cfg.FHIR.Picker.BaseURL, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if t := g.cfg.FHIR.Picker.Token; t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("FHIR request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("FHIR server returned %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v); err != nil {
		return fmt.Errorf("decode FHIR response: %w", err)
	}
	return nil
}
