package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const exampleFile = "../../config.example.yaml"

// setExampleEnv sets the environment variables that config.example.yaml
// refers to.
func setExampleEnv(t *testing.T) {
	t.Helper()
	t.Setenv("SMARTGATE_COOKIE_SECRET", "example-cookie-secret-0123456789abcdef")
	t.Setenv("SMARTGATE_UPSTREAM_CLIENT_SECRET", "example-upstream-secret")
	t.Setenv("SMARTGATE_REDIS_PASSWORD", "example-redis-password")
	t.Setenv("GROWTH_APP_SECRET", "example-growth-chart-secret-0123456789")
	t.Setenv("FHIR_INTROSPECT_SECRET", "example-introspection-secret-0123456789")
	t.Setenv("SMARTGATE_PICKER_TOKEN", "example-picker-token")
	t.Setenv("EHR_LAUNCH_SECRET", "example-ehr-launch-secret-0123456789abc")
}

func TestExampleLoads(t *testing.T) {
	setExampleEnv(t)
	cfg, err := LoadFile(exampleFile)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if got := cfg.Server.CookieSecret; got != "example-cookie-secret-0123456789abcdef" {
		t.Errorf("server.cookie_secret = %q, want the value of SMARTGATE_COOKIE_SECRET", got)
	}
	var types []ClientType
	for _, c := range cfg.Clients {
		types = append(types, c.Type)
	}
	for _, want := range []ClientType{ClientPublic, ClientConfidentialSymmetric, ClientConfidentialAsymmetric} {
		if !slices.Contains(types, want) {
			t.Errorf("client types = %q, want an example of %s", types, want)
		}
	}
}

func TestExampleNeedsItsVariables(t *testing.T) {
	setExampleEnv(t)
	if err := os.Unsetenv("GROWTH_APP_SECRET"); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(exampleFile)
	if err == nil || !strings.Contains(err.Error(), "environment variable GROWTH_APP_SECRET is not set") {
		t.Errorf("LoadFile without GROWTH_APP_SECRET: error = %v, want it to name the variable", err)
	}
}

// TestExampleDocumentsEveryKey fails when config.Config has a key that
// config.example.yaml does not set.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("decode %s: %v", exampleFile, err)
	}
	present := map[string]bool{}
	collectKeyPaths(&root, "", present)

	keys := configKeyPaths(reflect.TypeFor[Config](), "")
	if len(keys) < 60 {
		t.Fatalf("found only %d keys in config.Config; the walk over the yaml tags is broken", len(keys))
	}
	for _, k := range keys {
		if !present[k.path] {
			t.Errorf("key %s is not in config.example.yaml; add it with a comment", k.path)
		}
	}
	for p := range present {
		if !knownKeyPath(keys, p) {
			t.Errorf("config.example.yaml sets %s, which is not a key of config.Config", p)
		}
	}
}

// keyPath is one key of the configuration. The keys under a map, such as
// the language codes of consent.text, are free-form.
type keyPath struct {
	path  string
	isMap bool
}

// knownKeyPath reports whether p is one of keys or lies under a map key.
func knownKeyPath(keys []keyPath, p string) bool {
	for _, k := range keys {
		if p == k.path || (k.isMap && strings.HasPrefix(p, k.path+".")) {
			return true
		}
	}
	return false
}

// configKeyPaths lists the key path of every yaml tag of typ, such as
// "server.listen" and "clients[].refresh_policy.rotation". A struct in a
// list adds "[]" to the path of the list.
func configKeyPaths(typ reflect.Type, prefix string) []keyPath {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	var out []keyPath
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := joinPath(prefix, name)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		out = append(out, keyPath{path: path, isMap: ft.Kind() == reflect.Map})

		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, configKeyPaths(ft, path)...)
		case ft.Kind() == reflect.Slice && structElem(ft):
			out = append(out, configKeyPaths(ft.Elem(), path+"[]")...)
		}
	}
	return out
}

func structElem(slice reflect.Type) bool {
	e := slice.Elem()
	for e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	return e.Kind() == reflect.Struct
}

// collectKeyPaths adds the path of every mapping key under n to present,
// in the form configKeyPaths uses. Every item of a list is one level "[]".
func collectKeyPaths(n *yaml.Node, path string, present map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			collectKeyPaths(c, path, present)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			collectKeyPaths(c, path+"[]", present)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(path, n.Content[i].Value)
			present[p] = true
			collectKeyPaths(n.Content[i+1], p, present)
		}
	}
}

func TestConfigKeyPaths(t *testing.T) {
	type inner struct {
		A string `yaml:"a"`
	}
	type outer struct {
		Plain   string            `yaml:"plain"`
		Nested  inner             `yaml:"nested"`
		Pointer *inner            `yaml:"pointer"`
		Items   []inner           `yaml:"items"`
		Refs    []*inner          `yaml:"refs"`
		Words   []string          `yaml:"words"`
		Labels  map[string]string `yaml:"labels,omitempty"`
		Skipped string            `yaml:"-"`
		Untyped string
	}
	got := configKeyPaths(reflect.TypeFor[outer](), "")
	want := []keyPath{
		{path: "plain"}, {path: "nested"}, {path: "nested.a"}, {path: "pointer"}, {path: "pointer.a"},
		{path: "items"}, {path: "items[].a"}, {path: "refs"}, {path: "refs[].a"}, {path: "words"},
		{path: "labels", isMap: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("configKeyPaths = %+v\nwant %+v", got, want)
	}
}

func TestCollectKeyPaths(t *testing.T) {
	var root yaml.Node
	doc := "a:\n  b: 1\n  c: [x, y]\nitems:\n  - d: 1\n  - e:\n      f: 2\n"
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	collectKeyPaths(&root, "", got)
	want := map[string]bool{
		"a": true, "a.b": true, "a.c": true,
		"items": true, "items[].d": true, "items[].e": true, "items[].e.f": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("collectKeyPaths = %v\nwant %v", got, want)
	}
}
