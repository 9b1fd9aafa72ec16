package consent

import (
	"bytes"
	"fmt"
	"net/url"
)

// PatientSearch holds the search values of the patient picker.
type PatientSearch struct {
	Name, BirthDate, Identifier string
}

// PatientChoice is one patient found by the picker.
type PatientChoice struct {
	ID, Name, BirthDate, Gender string
}

// PickerView is what the patient picker page shows.
type PickerView struct {
	AppName   string
	Search    PatientSearch
	Searched  bool // a search ran; Patients holds its results
	Failed    bool // the search could not reach the FHIR server
	Patients  []PatientChoice
	Action    string
	RequestID string
	CSRF      string
	Page      *url.URL
}

type pickerData struct {
	common
	PickerView
	Intro string
}

// RenderPicker renders the patient picker in lang.
func (p *Pages) RenderPicker(lang string, v PickerView) ([]byte, error) {
	d := pickerData{
		common:     p.common(lang, "picker.title", v.Page),
		PickerView: v,
		Intro:      p.text.Text(lang, "picker.intro", v.AppName),
	}
	var buf bytes.Buffer
	if err := p.picker.ExecuteTemplate(&buf, "picker.html", d); err != nil {
		return nil, fmt.Errorf("render patient picker: %w", err)
	}
	return buf.Bytes(), nil
}
