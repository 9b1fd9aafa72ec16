package scope

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	permAll   = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
	permRS    = PermRead | PermSearch
	permWrite = PermCreate | PermUpdate | PermDelete

	labQuery = "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
)

func TestParseAccepted(t *testing.T) {
	long := "__" + strings.Repeat("x", MaxLength-2)
	tests := []struct {
		name string
		raw  string
		want Scope
	}{
		// Resource scopes, SMART v2 letters.
		{"patient v2 rs", "patient/Observation.rs",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Observation", Perms: permRS}},
		{"user v2 rs", "user/Observation.rs",
			Scope{Kind: KindResource, Level: LevelUser, Resource: "Observation", Perms: permRS}},
		{"system v2 rs", "system/Observation.rs",
			Scope{Kind: KindResource, Level: LevelSystem, Resource: "Observation", Perms: permRS}},
		{"v2 all letters", "patient/Condition.cruds",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Condition", Perms: permAll}},
		{"v2 create only", "patient/Condition.c",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Condition", Perms: PermCreate}},
		{"v2 read only", "patient/Condition.r",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Condition", Perms: PermRead}},
		{"v2 update only", "user/Condition.u",
			Scope{Kind: KindResource, Level: LevelUser, Resource: "Condition", Perms: PermUpdate}},
		{"v2 delete only", "user/Condition.d",
			Scope{Kind: KindResource, Level: LevelUser, Resource: "Condition", Perms: PermDelete}},
		{"v2 search only", "system/Condition.s",
			Scope{Kind: KindResource, Level: LevelSystem, Resource: "Condition", Perms: PermSearch}},
		{"v2 letters with gaps", "patient/Encounter.cud",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Encounter", Perms: permWrite}},
		{"v2 first and last letter", "patient/Encounter.cs",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Encounter", Perms: PermCreate | PermSearch}},
		{"v2 rus", "patient/Encounter.rus",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Encounter", Perms: PermRead | PermUpdate | PermSearch}},

		// Resource scopes, SMART v1 words carry their v2 meaning.
		{"v1 read", "patient/Observation.read",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Observation", Perms: permRS, V1: true}},
		{"v1 write", "user/Observation.write",
			Scope{Kind: KindResource, Level: LevelUser, Resource: "Observation", Perms: permWrite, V1: true}},
		{"v1 star", "system/Observation.*",
			Scope{Kind: KindResource, Level: LevelSystem, Resource: "Observation", Perms: permAll, V1: true}},

		// Wildcard resource type.
		{"wildcard v2", "patient/*.rs",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "*", Perms: permRS}},
		{"wildcard v1 read", "user/*.read",
			Scope{Kind: KindResource, Level: LevelUser, Resource: "*", Perms: permRS, V1: true}},
		{"wildcard v1 star", "system/*.*",
			Scope{Kind: KindResource, Level: LevelSystem, Resource: "*", Perms: permAll, V1: true}},

		// Granular scopes with a query.
		{"query with token value", "patient/Observation.rs?category=laboratory",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Observation", Perms: permRS, Query: "category=laboratory"}},
		{"query with system and code", "patient/Observation.rs?" + labQuery,
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Observation", Perms: permRS, Query: labQuery}},
		{"query of several parameters", "patient/Observation.rs?code=http://loinc.org|8867-4&date=ge2024-01-01",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Observation", Perms: permRS, Query: "code=http://loinc.org|8867-4&date=ge2024-01-01"}},
		{"query name with dots and colon", "patient/Condition.rs?category:in=http://example.org/ValueSet/x.y",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Condition", Perms: permRS, Query: "category:in=http://example.org/ValueSet/x.y"}},
		{"query with plus kept literally", "patient/Observation.rs?code=a+b",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "Observation", Perms: permRS, Query: "code=a+b"}},
		{"query on wildcard", "patient/*.rs?_security=R",
			Scope{Kind: KindResource, Level: LevelPatient, Resource: "*", Perms: permRS, Query: "_security=R"}},

		// Launch context scopes.
		{"launch", "launch", Scope{Kind: KindLaunch}},
		{"launch patient", "launch/patient", Scope{Kind: KindLaunch, Context: "patient"}},
		{"launch encounter", "launch/encounter", Scope{Kind: KindLaunch, Context: "encounter"}},
		{"launch other type", "launch/practitioner", Scope{Kind: KindLaunch, Context: "practitioner"}},
		{"launch with role", "launch/patient?role=https://example.org/fhir/roles/subject",
			Scope{Kind: KindLaunch, Context: "patient", Query: "role=https://example.org/fhir/roles/subject"}},

		// OpenID Connect and access duration scopes.
		{"openid", "openid", Scope{Kind: KindOpenID}},
		{"fhirUser", "fhirUser", Scope{Kind: KindFHIRUser}},
		{"profile", "profile", Scope{Kind: KindProfile}},
		{"offline_access", "offline_access", Scope{Kind: KindOfflineAccess}},
		{"online_access", "online_access", Scope{Kind: KindOnlineAccess}},

		// Extension scopes.
		{"double underscore name", "__vendor_feature", Scope{Kind: KindExtension}},
		{"https URI", "https://example.org/scopes/read-notes", Scope{Kind: KindExtension}},
		{"URN", "urn:example:smart:scope", Scope{Kind: KindExtension}},
		{"URI with plus in path", "https://example.org/a+b", Scope{Kind: KindExtension}},
		{"longest accepted", long, Scope{Kind: KindExtension}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.raw)
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.raw, err)
			}
			want := tt.want
			want.Raw = tt.raw
			if got != want {
				t.Errorf("Parse(%q)\n got  %+v\n want %+v", tt.raw, got, want)
			}
		})
	}
}

func TestParseRejected(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		message string // fragment of the error text
	}{
		{"empty", "", "length 0"},
		{"over max length", "__" + strings.Repeat("x", MaxLength-1), "length 1025"},

		{"space inside", "patient/Observation.rs openid", "control, space or non-ASCII"},
		{"tab", "patient/Observation.rs\t", "control, space or non-ASCII"},
		{"newline", "openid\n", "control, space or non-ASCII"},
		{"NUL byte", "open\x00id", "control, space or non-ASCII"},
		{"DEL byte", "openid\x7f", "control, space or non-ASCII"},
		{"non-ASCII type", "patient/Obsérvation.rs", "control, space or non-ASCII"},
		{"non-ASCII extension", "__ñame", "control, space or non-ASCII"},

		{"out of order sr", "patient/Observation.sr", `permissions "sr" are not letters`},
		{"repeated rr", "patient/Observation.rr", `permissions "rr" are not letters`},
		{"out of order dus", "patient/Observation.dus", `permissions "dus" are not letters`},
		{"out of order sc", "patient/Observation.sc", `permissions "sc" are not letters`},
		{"repeated ss", "patient/Observation.cruss", `permissions "cruss" are not letters`},
		{"unknown letter", "patient/Observation.rx", `permissions "rx" are not letters`},
		{"upper-case letters", "patient/Observation.RS", `permissions "RS" are not letters`},
		{"empty permissions", "patient/Observation.", "no permissions"},
		{"misspelt v1 word", "patient/Observation.reed", `permissions "reed" are not letters`},
		{"second dot", "patient/Observation.r.s", `permissions "r.s" are not letters`},
		{"plus between letters", "patient/Observation.r+s", `permissions "r+s" are not letters`},

		{"no permissions part", "patient/Observation", "expected <level>/<ResourceType or *>"},
		{"lower-case type", "patient/observation.rs", "expected <level>/<ResourceType or *>"},
		{"type with digits", "patient/Observation2.rs", "expected <level>/<ResourceType or *>"},
		{"one letter type", "patient/O.rs", "expected <level>/<ResourceType or *>"},
		{"empty type", "patient/.rs", "expected <level>/<ResourceType or *>"},
		{"type with hyphen", "patient/Allergy-Intolerance.rs", "expected <level>/<ResourceType or *>"},
		{"extra path segment", "patient/Observation/x.rs", "expected <level>/<ResourceType or *>"},

		{"v1 with query", "patient/Observation.read?category=laboratory", "SMART v1 scopes take no query"},
		{"empty query", "patient/Observation.rs?", "the query must be name=value pairs"},
		{"query without value", "patient/Observation.rs?category=", "the query must be name=value pairs"},
		{"query without name", "patient/Observation.rs?=laboratory", "the query must be name=value pairs"},
		{"query without equals", "patient/Observation.rs?category", "the query must be name=value pairs"},
		{"query with trailing ampersand", "patient/Observation.rs?category=laboratory&", "the query must be name=value pairs"},
		{"query with doubled ampersand", "patient/Observation.rs?a=b&&c=d", "the query must be name=value pairs"},
		{"query value with equals", "patient/Observation.rs?code=a=b", "the query must be name=value pairs"},

		{"launch upper-case context", "launch/Patient", "launch context type must be lower-case"},
		{"launch empty context", "launch/", "launch context type must be lower-case"},
		{"launch context with digit", "launch/patient2", "launch context type must be lower-case"},
		{"launch empty role", "launch/patient?role=", "one role=<uri> and nothing else"},
		{"launch other parameter", "launch/patient?context=x", "one role=<uri> and nothing else"},
		{"launch role and more", "launch/patient?role=https://example.org/r&x=y", "one role=<uri> and nothing else"},

		{"upper-case level", "Patient/Observation.rs", `invalid scope: "Patient/Observation.rs"`},
		{"unknown level", "group/Observation.rs", `invalid scope: "group/Observation.rs"`},
		{"unknown resource type", "patient/Xyzzy.rs", "Xyzzy is not a FHIR resource type"},
		{"two letter type", "patient/Ab.r", "Ab is not a FHIR resource type"},
		{"type in wrong case", "patient/OBSERVATION.rs", "OBSERVATION is not a FHIR resource type"},
		{"upper-case openid", "OpenID", `invalid scope: "OpenID"`},
		{"lower-case fhiruser", "fhiruser", `invalid scope: "fhiruser"`},
		{"plain OIDC email", "email", `invalid scope: "email"`},
		{"form-encoded pair", "openid+profile", `invalid scope: "openid+profile"`},
		{"single underscore", "_x", `invalid scope: "_x"`},
		{"bare double underscore", "__", `invalid scope: "__"`},
		{"URI scheme only", "urn:", `invalid scope: "urn:"`},
		{"scheme starting with digit", "1urn:x", `invalid scope: "1urn:x"`},
		{"launch with plus", "launch+openid", `invalid scope: "launch+openid"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.raw)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.raw, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", tt.raw, err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.raw, err, tt.message)
			}
			if got.Raw != tt.raw {
				t.Errorf("Parse(%q).Raw = %q, want the input", tt.raw, got.Raw)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		param string
		want  []string
	}{
		{"empty", "", nil},
		{"only spaces", "   ", nil},
		{"one scope", "openid", []string{"openid"}},
		{"single spaces", "openid fhirUser launch", []string{"openid", "fhirUser", "launch"}},
		{"doubled spaces", "openid  fhirUser", []string{"openid", "fhirUser"}},
		{"leading and trailing spaces", " openid fhirUser ", []string{"openid", "fhirUser"}},
		{"plus is not a separator", "openid+fhirUser", []string{"openid+fhirUser"}},
		{"tab is not a separator", "openid\tfhirUser", []string{"openid\tfhirUser"}},
		{"duplicates kept", "openid openid", []string{"openid", "openid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.param)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Split(%q) = %q, want %q", tt.param, got, tt.want)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		name         string
		param        string
		wantRaw      []string
		wantRejected []string
	}{
		{"empty parameter", "", nil, nil},
		{"order kept", "patient/Observation.rs openid launch/patient fhirUser",
			[]string{"patient/Observation.rs", "openid", "launch/patient", "fhirUser"}, nil},
		{"doubled spaces", "openid  launch   offline_access",
			[]string{"openid", "launch", "offline_access"}, nil},
		{"duplicates kept once", "openid patient/Observation.rs openid patient/Observation.rs",
			[]string{"openid", "patient/Observation.rs"}, nil},
		{"v1 and v2 forms both kept", "patient/Observation.read patient/Observation.rs",
			[]string{"patient/Observation.read", "patient/Observation.rs"}, nil},
		{"rejected reported", "openid patient/Observation.sr launch",
			[]string{"openid", "launch"}, []string{"patient/Observation.sr"}},
		{"rejected duplicates reported once", "bad bad openid",
			[]string{"openid"}, []string{"bad"}},
		{"plus joined scopes rejected whole", "openid+fhirUser launch",
			[]string{"launch"}, []string{"openid+fhirUser"}},
		{"plus inside a query kept", "patient/Observation.rs?code=a+b",
			[]string{"patient/Observation.rs?code=a+b"}, nil},
		{"percent encoding kept byte for byte", "patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5",
			[]string{"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5"}, nil},
		{"granular query kept byte for byte", "patient/Observation.rs?" + labQuery + " openid",
			[]string{"patient/Observation.rs?" + labQuery, "openid"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, rejected := ParseList(tt.param)
			var raws []string
			for _, s := range list {
				raws = append(raws, s.Raw)
			}
			if !reflect.DeepEqual(raws, tt.wantRaw) {
				t.Errorf("ParseList(%q) scopes = %q, want %q", tt.param, raws, tt.wantRaw)
			}
			if !reflect.DeepEqual(rejected, tt.wantRejected) {
				t.Errorf("ParseList(%q) rejected = %q, want %q", tt.param, rejected, tt.wantRejected)
			}
			if got, want := list.String(), strings.Join(tt.wantRaw, " "); got != want {
				t.Errorf("List.String() = %q, want %q", got, want)
			}
		})
	}
}

func TestPermString(t *testing.T) {
	tests := []struct {
		name string
		perm Perm
		want string
	}{
		{"none", 0, ""},
		{"all in canonical order", permAll, "cruds"},
		{"read and search", permRS, "rs"},
		{"v1 write", permWrite, "cud"},
		{"search and create", PermSearch | PermCreate, "cs"},
		{"delete only", PermDelete, "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.perm.String(); got != tt.want {
				t.Errorf("Perm(%d).String() = %q, want %q", tt.perm, got, tt.want)
			}
		})
	}
}

func TestPermStringRoundTrip(t *testing.T) {
	for p := Perm(1); p <= permAll; p++ {
		s, err := Parse("patient/Observation." + p.String())
		if err != nil {
			t.Fatalf("Parse of letters %q: %v", p.String(), err)
		}
		if s.Perms != p {
			t.Errorf("letters %q parsed to %d, want %d", p.String(), s.Perms, p)
		}
	}
}

func mustParse(t *testing.T, raw string) Scope {
	t.Helper()
	s, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%q): %v", raw, err)
	}
	return s
}

func mustParseList(t *testing.T, param string) List {
	t.Helper()
	list, rejected := ParseList(param)
	if len(rejected) > 0 {
		t.Fatalf("ParseList(%q) rejected %q", param, rejected)
	}
	return list
}

func TestCovers(t *testing.T) {
	tests := []struct {
		name    string
		granted string
		request string
		want    bool
	}{
		{"same scope", "patient/Observation.rs", "patient/Observation.rs", true},
		{"v1 read covered by v2 rs", "patient/Observation.rs", "patient/Observation.read", true},
		{"v2 rs covered by v1 read", "patient/Observation.read", "patient/Observation.rs", true},
		{"v1 write covers cud", "patient/Observation.write", "patient/Observation.cud", true},
		{"v1 write does not cover read", "patient/Observation.write", "patient/Observation.r", false},
		{"v1 star covers cruds", "patient/Observation.*", "patient/Observation.cruds", true},
		{"cruds covers v1 star", "patient/Observation.cruds", "patient/Observation.*", true},
		{"wider covers narrower", "patient/Observation.rs", "patient/Observation.r", true},
		{"narrower does not cover wider", "patient/Observation.r", "patient/Observation.rs", false},
		{"read does not cover write", "patient/Observation.rs", "patient/Observation.rus", false},
		{"v1 read does not cover v1 star", "patient/Observation.read", "patient/Observation.*", false},
		{"wildcard covers a type", "patient/*.rs", "patient/Observation.rs", true},
		{"wildcard covers v1 of a type", "patient/*.rs", "patient/AllergyIntolerance.read", true},
		{"type does not cover wildcard", "patient/Observation.rs", "patient/*.rs", false},
		{"other type not covered", "patient/Observation.rs", "patient/Condition.rs", false},
		{"query-less covers a query", "patient/Observation.rs", "patient/Observation.rs?" + labQuery, true},
		{"wildcard covers a query", "patient/*.cruds", "patient/Observation.rs?category=laboratory", true},
		{"query does not cover query-less", "patient/Observation.rs?category=laboratory", "patient/Observation.rs", false},
		{"same query covered", "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory", true},
		{"other query not covered", "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs", false},
		{"query with wider permissions not covered", "patient/Observation.rs", "patient/Observation.cruds?category=laboratory", false},
		{"user does not cover patient", "user/Observation.rs", "patient/Observation.rs", false},
		{"patient does not cover user", "patient/*.cruds", "user/Observation.rs", false},
		{"system does not cover patient", "system/*.*", "patient/Observation.rs", false},
		{"launch covers launch", "launch", "launch", true},
		{"launch does not cover launch patient", "launch", "launch/patient", false},
		{"launch patient covers itself", "launch/patient", "launch/patient", true},
		{"launch patient does not cover encounter", "launch/patient", "launch/encounter", false},
		{"launch without role does not cover role", "launch/patient", "launch/patient?role=https://example.org/r", false},
		{"launch role does not cover no role", "launch/patient?role=https://example.org/r", "launch/patient", false},
		{"openid covers itself", "openid", "openid", true},
		{"openid does not cover profile", "openid", "profile", false},
		{"offline does not cover online", "offline_access", "online_access", false},
		{"extension covers itself", "__feature", "__feature", true},
		{"extension does not cover another", "__feature", "__other", false},
		{"resource does not cover launch", "patient/*.*", "launch/patient", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, r := mustParse(t, tt.granted), mustParse(t, tt.request)
			if got := g.Covers(r); got != tt.want {
				t.Errorf("%q.Covers(%q) = %v, want %v", tt.granted, tt.request, got, tt.want)
			}
		})
	}
}

func TestListCoversAll(t *testing.T) {
	tests := []struct {
		name    string
		granted string
		request string
		want    bool
	}{
		{"empty request", "openid", "", true},
		{"empty grant covers nothing", "", "openid", false},
		{"every scope covered", "openid fhirUser patient/*.rs launch/patient",
			"patient/Observation.rs patient/Condition.read openid launch/patient", true},
		{"one scope missing", "openid patient/*.rs", "openid patient/Observation.rs offline_access", false},
		{"one permission missing", "patient/Observation.rs", "patient/Observation.rs patient/Observation.c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, r := mustParseList(t, tt.granted), mustParseList(t, tt.request)
			if got := g.CoversAll(r); got != tt.want {
				t.Errorf("%q.CoversAll(%q) = %v, want %v", tt.granted, tt.request, got, tt.want)
			}
		})
	}
}

func TestListAllowed(t *testing.T) {
	tests := []struct {
		name        string
		allowed     string
		request     string
		wantKept    string
		wantDropped string
	}{
		{"all allowed",
			"openid fhirUser launch/patient patient/*.rs offline_access",
			"launch/patient openid patient/Observation.read patient/Condition.rs",
			"launch/patient openid patient/Observation.read patient/Condition.rs", ""},
		{"write dropped from read-only app",
			"openid patient/*.rs",
			"openid patient/Observation.cruds patient/Observation.rs",
			"openid patient/Observation.rs", "patient/Observation.cruds"},
		{"other level dropped",
			"patient/*.rs",
			"user/Observation.rs patient/Observation.rs system/Observation.rs",
			"patient/Observation.rs", "user/Observation.rs system/Observation.rs"},
		{"granular pattern keeps only its query",
			"patient/Observation.rs?category=laboratory",
			"patient/Observation.rs?category=laboratory patient/Observation.rs",
			"patient/Observation.rs?category=laboratory", "patient/Observation.rs"},
		{"unlisted kinds dropped in order",
			"openid",
			"offline_access openid __feature online_access",
			"openid", "offline_access __feature online_access"},
		{"nothing allowed", "", "openid launch", "", "openid launch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allowed, request := mustParseList(t, tt.allowed), mustParseList(t, tt.request)
			kept, dropped := request.Allowed(allowed)
			if got := kept.String(); got != tt.wantKept {
				t.Errorf("kept = %q, want %q", got, tt.wantKept)
			}
			if got := dropped.String(); got != tt.wantDropped {
				t.Errorf("dropped = %q, want %q", got, tt.wantDropped)
			}
		})
	}
}

func TestListHas(t *testing.T) {
	list := mustParseList(t, "openid launch/patient user/Observation.rs")
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"has openid", list.Has(KindOpenID), true},
		{"has no fhirUser", list.Has(KindFHIRUser), false},
		{"has user level", list.HasLevel(LevelUser), true},
		{"has no patient level", list.HasLevel(LevelPatient), false},
		{"has launch patient", list.HasLaunch("patient"), true},
		{"has no launch encounter", list.HasLaunch("encounter"), false},
		{"has no bare launch", list.HasLaunch(""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"patient/Observation.rs",
		"user/*.cruds",
		"system/Patient.read",
		"patient/Observation.rs?" + labQuery,
		"patient/Observation.sr",
		"launch/patient?role=https://example.org/r",
		"openid",
		"__x",
		"urn:a:b",
		"patient/Observation.",
		"",
		"\x00",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", raw, err)
			}
			return
		}
		if s.Raw != raw {
			t.Fatalf("Parse(%q).Raw = %q", raw, s.Raw)
		}
		again, err := Parse(s.Raw)
		if err != nil {
			t.Fatalf("Parse(%q) succeeded, then failed on its Raw: %v", raw, err)
		}
		if again != s {
			t.Fatalf("Parse(%q) = %+v, then %+v", raw, s, again)
		}
		if s.Kind == KindResource && s.Perms == 0 {
			t.Fatalf("Parse(%q) gave a resource scope without permissions", raw)
		}
		if got := Split(raw); len(got) != 1 || got[0] != raw {
			t.Fatalf("Split(%q) = %q, want the scope alone", raw, got)
		}
	})
}
