package consent

import (
	"strings"
	"testing"
	"time"

	"github.com/smartgate/smartgate/internal/scope"
)

const labScope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

// refreshUntil is the end of persistent access the offline_access cases show.
var refreshUntil = time.Date(2027, time.March, 3, 15, 4, 5, 0, time.UTC)

func mustParseList(t *testing.T, param string) scope.List {
	t.Helper()
	list, rejected := scope.ParseList(param)
	if len(rejected) > 0 {
		t.Fatalf("ParseList(%q) rejected %q", param, rejected)
	}
	return list
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name      string
		scope     string
		lang      string
		short     string   // the whole short text
		longParts []string // fragments of the long text
	}{
		{"allergies", "patient/AllergyIntolerance.rs", "en",
			"See your allergies", []string{"The app can see your allergies."}},
		{"allergies es", "patient/AllergyIntolerance.rs", "es",
			"Ver sus alergias", []string{"La aplicación puede ver sus alergias."}},
		{"v1 read reads like v2", "patient/MedicationRequest.read", "en",
			"See your medicines", []string{"The app can see your medicines."}},
		{"search only reads as see", "patient/Patient.s", "en",
			"See your basic details (name, birth date, contact)", nil},
		{"lab results category", labScope, "en",
			"See your lab results", []string{"lab results", "cannot see your other test results"}},
		{"lab results category es", labScope, "es",
			"Ver sus resultados de laboratorio", []string{"resultados de laboratorio", "no puede ver el resto"}},
		{"category code without system", "patient/Observation.rs?category=vital-signs", "en",
			"See your vital signs", nil},
		{"unknown category", "patient/Observation.rs?category=unknown-code", "en",
			"See your test results and vital signs (only some, picked by the app)", nil},
		{"query of several parameters", "patient/Observation.rs?category=laboratory&date=ge2024", "en",
			"See your test results and vital signs (only some, picked by the app)", nil},
		{"wildcard", "patient/*.rs", "en",
			"See all your health records, also new kinds added later",
			[]string{"added later", "This covers all kinds of records, now and in the future."}},
		{"wildcard es", "patient/*.rs", "es",
			"Ver todos sus registros de salud, incluidos los tipos que se agreguen después",
			[]string{"se agreguen después", "ahora y en el futuro"}},
		{"write warns about record", "patient/Condition.cud", "en",
			"Add, change and delete your health problems", []string{"may become part of your health record"}},
		{"all permissions", "patient/Condition.cruds", "en",
			"See, add, change and delete your health problems", []string{"The app can see, add, change and delete your health problems."}},
		{"all permissions es", "patient/Condition.cruds", "es",
			"Ver, agregar, cambiar y borrar sus problemas de salud", []string{"pueden pasar a su historia clínica"}},
		{"delete only", "patient/Patient.d", "en",
			"Delete your basic details (name, birth date, contact)", nil},
		{"resource type without a plain name", "patient/Flag.rs", "en",
			"See your other health records", []string{"calls this kind of record Flag"}},
		{"user level", "user/Observation.rs", "en",
			"See test results and vital signs you have access to", nil},
		{"system level", "system/Observation.rs", "en",
			"See test results and vital signs, for a system with no person signed in", nil},
		{"openid", "openid", "en", "Confirm who you are", []string{"signed in at the hospital"}},
		{"openid es", "openid", "es", "Confirmar quién es usted", nil},
		{"fhirUser", "fhirUser", "en", "Know which record is yours", nil},
		{"profile", "profile", "en", "See your name", nil},
		{"launch", "launch", "en", "Open the records that were chosen", nil},
		{"launch patient", "launch/patient", "en", "Know whose records to open", nil},
		{"launch encounter es", "launch/encounter", "es", "Saber qué visita abrir", nil},
		{"launch of other type", "launch/practitioner", "en", "Open the records that were chosen", nil},
		{"offline access", "offline_access", "en", "Keep access after you close the app",
			[]string{"until 3 March 2027."}},
		{"offline access es", "offline_access", "es", "Mantener el acceso después de cerrar la aplicación",
			[]string{"hasta el 3 de marzo de 2027."}},
		{"online access", "online_access", "en", "Keep access while you are signed in", nil},
		{"extension", "__vendor_feature", "en", "A special permission of this app", nil},
		{"unknown language falls back to English", "patient/AllergyIntolerance.rs", "fr", "See your allergies", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := Describe(mustParseList(t, tt.scope), tt.lang, refreshUntil)
			if len(items) != 1 {
				t.Fatalf("got %d items, want 1", len(items))
			}
			it := items[0]
			if it.Scope != tt.scope {
				t.Errorf("Scope = %q, want the raw scope %q", it.Scope, tt.scope)
			}
			if it.Short != tt.short {
				t.Errorf("Short = %q, want %q", it.Short, tt.short)
			}
			for _, part := range tt.longParts {
				if !strings.Contains(it.Long, part) {
					t.Errorf("Long = %q, want it to contain %q", it.Long, part)
				}
			}
			if strings.Contains(it.Short+it.Long, "%!") {
				t.Errorf("text has a formatting error: %q / %q", it.Short, it.Long)
			}
		})
	}
}

func TestDescribeKeepsOrderAndLocks(t *testing.T) {
	param := "patient/Observation.rs launch/patient openid offline_access " + labScope
	items := Describe(mustParseList(t, param), "en", refreshUntil)
	wantLocked := []bool{false, true, true, false, false}
	raws := strings.Split(param, " ")
	if len(items) != len(raws) {
		t.Fatalf("got %d items, want %d", len(items), len(raws))
	}
	for i, it := range items {
		if it.Scope != raws[i] {
			t.Errorf("item %d Scope = %q, want %q", i, it.Scope, raws[i])
		}
		if it.Locked != wantLocked[i] {
			t.Errorf("item %d (%s) Locked = %v, want %v", i, it.Scope, it.Locked, wantLocked[i])
		}
	}
}

func TestCatalogDescribeLocksRequired(t *testing.T) {
	requested := mustParseList(t, "patient/Observation.rs patient/Condition.rs offline_access")
	required := mustParseList(t, "patient/Observation.read")
	items := defaultCatalog.Describe(requested, "en", refreshUntil, required)
	want := []bool{true, false, false}
	for i, it := range items {
		if it.Locked != want[i] {
			t.Errorf("%s Locked = %v, want %v", it.Scope, it.Locked, want[i])
		}
	}
}

func TestLocked(t *testing.T) {
	tests := []struct {
		scope string
		want  bool
	}{
		{"launch", true},
		{"launch/patient", true},
		{"launch/encounter", true},
		{"launch/patient?role=https://example.org/r", true},
		{"openid", true},
		{"fhirUser", false},
		{"profile", false},
		{"offline_access", false},
		{"online_access", false},
		{"patient/*.rs", false},
		{"patient/Observation.rs", false},
		{"__vendor_feature", false},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			s, err := scope.Parse(tt.scope)
			if err != nil {
				t.Fatal(err)
			}
			if got := Locked(s); got != tt.want {
				t.Errorf("Locked(%q) = %v, want %v", tt.scope, got, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	const requested = "launch/patient openid fhirUser patient/Observation.read " + labScope + " offline_access"
	tests := []struct {
		name      string
		unchecked []string
		want      string
	}{
		{"nothing unchecked", nil,
			requested},
		{"optional scope dropped", []string{"offline_access"},
			"launch/patient openid fhirUser patient/Observation.read " + labScope},
		{"several dropped order kept", []string{"fhirUser", "patient/Observation.read"},
			"launch/patient openid " + labScope + " offline_access"},
		{"granular scope dropped by raw string", []string{labScope},
			"launch/patient openid fhirUser patient/Observation.read offline_access"},
		{"locked scopes kept", []string{"launch/patient", "openid"},
			requested},
		{"everything unchecked keeps locked", strings.Split(requested, " "),
			"launch/patient openid"},
		{"v2 spelling does not match v1 scope", []string{"patient/Observation.rs"},
			requested},
		{"unrequested scope ignored", []string{"patient/Condition.rs"},
			requested},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unchecked := map[string]bool{}
			for _, s := range tt.unchecked {
				unchecked[s] = true
			}
			got := Decide(mustParseList(t, requested), unchecked)
			if got.String() != tt.want {
				t.Errorf("Decide = %q\nwant     %q", got.String(), tt.want)
			}
		})
	}
}

func TestFormatDate(t *testing.T) {
	tests := []struct {
		name string
		date time.Time
		lang string
		want string
	}{
		{"English", time.Date(2027, time.March, 3, 0, 0, 0, 0, time.UTC), "en", "3 March 2027"},
		{"Spanish", time.Date(2027, time.March, 3, 0, 0, 0, 0, time.UTC), "es", "3 de marzo de 2027"},
		{"English January", time.Date(2026, time.January, 31, 23, 59, 0, 0, time.UTC), "en", "31 January 2026"},
		{"Spanish December", time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC), "es", "1 de diciembre de 2026"},
		{"unknown language in English", time.Date(2027, time.March, 3, 0, 0, 0, 0, time.UTC), "fr", "3 March 2027"},
		{"date in its own zone", time.Date(2027, time.March, 3, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)), "en", "3 March 2027"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatDate(tt.date, tt.lang); got != tt.want {
				t.Errorf("FormatDate = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCatalogGroups(t *testing.T) {
	requested := mustParseList(t, "openid patient/Observation.rs offline_access launch/patient patient/*.rs patient/Observation.cud __x fhirUser")
	groups := defaultCatalog.Groups(requested, "en", refreshUntil, nil)
	var got []string
	for _, g := range groups {
		var raws []string
		for _, it := range g.Items {
			raws = append(raws, it.Scope)
		}
		got = append(got, g.Title+": "+strings.Join(raws, " "))
	}
	want := []string{
		"All your health records: patient/*.rs",
		"Test results and vital signs: patient/Observation.rs patient/Observation.cud",
		"Which records: launch/patient",
		"About you: openid fhirUser",
		"How long: offline_access",
		"Other: __x",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
