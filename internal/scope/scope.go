// Package scope parses SMART App Launch 2.2 scopes and decides whether one
// scope covers another.
//
// A parsed Scope keeps the exact string the app sent in Raw, and the
// gateway grants scopes by returning those strings unchanged: a scope is
// never re-encoded, split or reordered on its way back to the app. The
// package has no dependency on HTTP, consent or tokens.
package scope

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Kind is the family a scope belongs to.
type Kind int

const (
	KindResource      Kind = iota + 1 // patient/Observation.rs
	KindLaunch                        // launch, launch/patient, launch/encounter
	KindOpenID                        // openid
	KindFHIRUser                      // fhirUser
	KindProfile                       // profile (plain OpenID Connect)
	KindOfflineAccess                 // offline_access
	KindOnlineAccess                  // online_access
	KindExtension                     // __name or an absolute URI
)

// Level is the compartment prefix of a resource scope.
type Level string

const (
	LevelPatient Level = "patient"
	LevelUser    Level = "user"
	LevelSystem  Level = "system"
)

// Perm is a set of SMART v2 permission letters.
type Perm uint8

const (
	PermCreate Perm = 1 << iota
	PermRead
	PermUpdate
	PermDelete
	PermSearch
)

const permLetters = "cruds"

// String returns the permissions as v2 letters in canonical order.
func (p Perm) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Scope is one parsed scope.
type Scope struct {
	Raw      string // exactly as requested
	Kind     Kind
	Level    Level  // resource scopes only
	Resource string // FHIR resource type or "*", resource scopes only
	Perms    Perm   // resource scopes only; v1 scopes carry their v2 meaning
	V1       bool   // written in SMART v1 syntax (.read, .write, .*)
	Query    string // granular restriction after "?", without the "?"
	Context  string // launch scopes: "patient", "encounter", ..., "" for bare "launch"
}

// MaxLength is the longest single scope accepted.
const MaxLength = 1024

var (
	// ErrInvalid marks a scope that does not follow the SMART grammar.
	ErrInvalid = errors.New("invalid scope")

	resourceType = regexp.MustCompile(`^(\*|[A-Z][A-Za-z]{1,63})$`)
	launchType   = regexp.MustCompile(`^[a-z]{1,64}$`)
	queryText    = regexp.MustCompile(`^[A-Za-z0-9_.:-]+=[^&=\s]+(&[A-Za-z0-9_.:-]+=[^&=\s]+)*$`)
	extension    = regexp.MustCompile(`^(__[\x21-\x7e]+|[a-z][a-z0-9+.-]*:[\x21-\x7e]+)$`)
)

// Parse parses one scope. It returns an error wrapping ErrInvalid for a
// string that is not a SMART, OpenID Connect or extension scope.
func Parse(raw string) (Scope, error) {
	s := Scope{Raw: raw}
	if raw == "" || len(raw) > MaxLength {
		return s, fmt.Errorf("%w: length %d", ErrInvalid, len(raw))
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] > '~' {
			return s, fmt.Errorf("%w: %q contains a control, space or non-ASCII character", ErrInvalid, raw)
		}
	}
	switch raw {
	case "openid":
		s.Kind = KindOpenID
		return s, nil
	case "fhirUser":
		s.Kind = KindFHIRUser
		return s, nil
	case "profile":
		s.Kind = KindProfile
		return s, nil
	case "offline_access":
		s.Kind = KindOfflineAccess
		return s, nil
	case "online_access":
		s.Kind = KindOnlineAccess
		return s, nil
	case "launch":
		s.Kind = KindLaunch
		return s, nil
	}
	if ctx, ok := strings.CutPrefix(raw, "launch/"); ok {
		return parseLaunch(s, ctx)
	}
	if level, rest, ok := strings.Cut(raw, "/"); ok {
		switch Level(level) {
		case LevelPatient, LevelUser, LevelSystem:
			return parseResource(s, Level(level), rest)
		}
	}
	if extension.MatchString(raw) {
		s.Kind = KindExtension
		return s, nil
	}
	return s, fmt.Errorf("%w: %q", ErrInvalid, raw)
}

func parseLaunch(s Scope, ctx string) (Scope, error) {
	typ, role, hasRole := strings.Cut(ctx, "?")
	if !launchType.MatchString(typ) {
		return s, fmt.Errorf("%w: %q: the launch context type must be lower-case letters", ErrInvalid, s.Raw)
	}
	if hasRole {
		v, ok := strings.CutPrefix(role, "role=")
		if !ok || v == "" || strings.ContainsAny(v, "&") {
			return s, fmt.Errorf("%w: %q: a launch scope takes one role=<uri> and nothing else", ErrInvalid, s.Raw)
		}
		s.Query = role
	}
	s.Kind = KindLaunch
	s.Context = typ
	return s, nil
}

func parseResource(s Scope, level Level, rest string) (Scope, error) {
	body, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(body, ".")
	if !ok || !resourceType.MatchString(typ) {
		return s, fmt.Errorf("%w: %q: expected <level>/<ResourceType or *>.<permissions>", ErrInvalid, s.Raw)
	}
	if typ != "*" && !resourceTypes[typ] {
		return s, fmt.Errorf("%w: %q: %s is not a FHIR resource type", ErrInvalid, s.Raw, typ)
	}
	s.Kind = KindResource
	s.Level = level
	s.Resource = typ
	switch perms {
	case "read":
		s.Perms, s.V1 = PermRead|PermSearch, true
	case "write":
		s.Perms, s.V1 = PermCreate|PermUpdate|PermDelete, true
	case "*":
		s.Perms, s.V1 = PermCreate|PermRead|PermUpdate|PermDelete|PermSearch, true
	default:
		p, err := parsePerms(perms)
		if err != nil {
			return s, fmt.Errorf("%w: %q: %v", ErrInvalid, s.Raw, err)
		}
		s.Perms = p
	}
	if hasQuery {
		if s.V1 {
			return s, fmt.Errorf("%w: %q: SMART v1 scopes take no query", ErrInvalid, s.Raw)
		}
		if !queryText.MatchString(query) {
			return s, fmt.Errorf("%w: %q: the query must be name=value pairs joined by &", ErrInvalid, s.Raw)
		}
		s.Query = query
	}
	return s, nil
}

// parsePerms reads v2 letters, which must be a non-empty subsequence of
// "cruds": ".rs" is valid, ".sr" and ".rr" are not, so that ".read" can
// never be misread as letters.
func parsePerms(letters string) (Perm, error) {
	if letters == "" {
		return 0, errors.New("no permissions")
	}
	var p Perm
	next := 0
	for i := 0; i < len(letters); i++ {
		j := strings.IndexByte(permLetters[next:], letters[i])
		if j < 0 {
			return 0, fmt.Errorf("permissions %q are not letters of c, r, u, d, s in that order", letters)
		}
		next += j + 1
		p |= 1 << (next - 1)
	}
	return p, nil
}

// Covers reports whether a grant of s includes everything r requests.
// A wildcard resource covers every type, a scope without a query covers
// the same scope with any query, and permissions must be a superset.
// Other kinds of scope cover only themselves.
func (s Scope) Covers(r Scope) bool {
	if s.Kind != r.Kind {
		return false
	}
	switch s.Kind {
	case KindResource:
		if s.Level != r.Level {
			return false
		}
		if s.Resource != "*" && s.Resource != r.Resource {
			return false
		}
		if r.Perms&^s.Perms != 0 {
			return false
		}
		return s.Query == "" || s.Query == r.Query
	case KindLaunch:
		return s.Context == r.Context && s.Query == r.Query
	default:
		return s.Raw == r.Raw
	}
}

// Split breaks a scope parameter into its scope strings. Scopes are
// separated by one or more spaces and by nothing else.
func Split(param string) []string {
	var out []string
	for f := range strings.SplitSeq(param, " ") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// List is a set of parsed scopes in request order.
type List []Scope

// ParseList parses a scope parameter. Scopes that fail to parse are
// returned in rejected; duplicates are kept once.
func ParseList(param string) (list List, rejected []string) {
	seen := map[string]bool{}
	for _, raw := range Split(param) {
		if seen[raw] {
			continue
		}
		seen[raw] = true
		s, err := Parse(raw)
		if err != nil {
			rejected = append(rejected, raw)
			continue
		}
		list = append(list, s)
	}
	return list, rejected
}

// String joins the raw scopes with single spaces.
func (l List) String() string {
	raws := make([]string, len(l))
	for i, s := range l {
		raws[i] = s.Raw
	}
	return strings.Join(raws, " ")
}

// Has reports whether the list holds a scope of the kind.
func (l List) Has(k Kind) bool {
	for _, s := range l {
		if s.Kind == k {
			return true
		}
	}
	return false
}

// HasLevel reports whether the list holds a resource scope of the level.
func (l List) HasLevel(level Level) bool {
	for _, s := range l {
		if s.Kind == KindResource && s.Level == level {
			return true
		}
	}
	return false
}

// HasLaunch reports whether the list holds launch/<context>.
func (l List) HasLaunch(context string) bool {
	for _, s := range l {
		if s.Kind == KindLaunch && s.Context == context {
			return true
		}
	}
	return false
}

// Covers reports whether some scope of l covers r.
func (l List) Covers(r Scope) bool {
	for _, s := range l {
		if s.Covers(r) {
			return true
		}
	}
	return false
}

// CoversAll reports whether every scope of r is covered by l.
func (l List) CoversAll(r List) bool {
	for _, s := range r {
		if !l.Covers(s) {
			return false
		}
	}
	return true
}

// Allowed keeps the scopes that a pattern in allowed covers and returns
// the rest as dropped.
func (l List) Allowed(allowed List) (kept, dropped List) {
	for _, s := range l {
		if allowed.Covers(s) {
			kept = append(kept, s)
		} else {
			dropped = append(dropped, s)
		}
	}
	return kept, dropped
}
