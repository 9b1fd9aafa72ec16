package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	Path    string // key path such as "clients[0].redirect_uris"
	Line    int    // line in the file, 0 when unknown
	Message string
}

func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Path != "":
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Path, p.Message)
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	case p.Path != "":
		return fmt.Sprintf("%s: %s", p.Path, p.Message)
	}
	return p.Message
}

// Error lists every problem found in a configuration file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s) in the configuration", e.File, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// LoadFile reads, decodes, completes and validates a configuration file.
// Every problem is reported at once in an *Error.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Load(path, data)
}

// Load decodes the YAML in data strictly: an unknown key is a problem that
// names the key and its line. ${NAME} in a string value is replaced by the
// environment variable NAME; "$${" writes a literal "${".
func Load(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{File: name, Problems: []Problem{yamlProblem(err)}}
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: name, Problems: []Problem{{Message: "the file is empty"}}}
	}

	// The first decode runs on the text as written, so unknown keys and
	// type errors are reported with the operator's line numbers.
	var probe Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&probe); err != nil {
		return nil, &Error{File: name, Problems: decodeProblems(err)}
	}

	var problems []Problem
	expandEnv(&root, "", &problems)
	if len(problems) > 0 {
		return nil, &Error{File: name, Problems: problems}
	}
	var cfg Config
	if err := root.Decode(&cfg); err != nil {
		return nil, &Error{File: name, Problems: decodeProblems(err)}
	}

	lines := keyLines(&root)
	problems = append(problems, readSecretFiles(&cfg, lines)...)
	ApplyDefaults(&cfg)
	problems = append(problems, Validate(&cfg, lines)...)
	if len(problems) > 0 {
		return nil, &Error{File: name, Problems: problems}
	}
	return &cfg, nil
}

var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?`)

// expandEnv replaces ${NAME} in every string scalar of the tree.
func expandEnv(n *yaml.Node, path string, problems *[]Problem) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			expandEnv(c, p, problems)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], joinPath(path, n.Content[i].Value), problems)
		}
	case yaml.ScalarNode:
		if n.Tag != "!!str" || !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			if ref == "$${" {
				return "${"
			}
			m := envRef.FindStringSubmatch(ref)
			if m[1] == "" {
				*problems = append(*problems, Problem{Path: path, Line: n.Line,
					Message: fmt.Sprintf("%q is not a valid variable reference; write ${NAME} with letters, digits and underscores", ref)})
				return ref
			}
			v, ok := os.LookupEnv(m[1])
			if !ok {
				*problems = append(*problems, Problem{Path: path, Line: n.Line,
					Message: fmt.Sprintf("environment variable %s is not set", m[1])})
			}
			return v
		})
	}
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// keyLines maps every key path of the document to the line it starts on.
func keyLines(root *yaml.Node) map[string]int {
	lines := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				lines[p] = c.Line
				walk(c, p)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := joinPath(path, n.Content[i].Value)
				lines[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		}
	}
	walk(root, "")
	return lines
}

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type config\.(\w+)$`)
	lineMessage  = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// decodeProblems turns the decoder's messages into problems that speak of
// keys rather than Go types.
func decodeProblems(err error) []Problem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []Problem{yamlProblem(err)}
	}
	var out []Problem
	for _, msg := range te.Errors {
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			out = append(out, Problem{Line: line, Message: fmt.Sprintf(
				"unknown key %q in %s; check its spelling against config.example.yaml", m[2], sectionName(m[3]))})
			continue
		}
		if m := lineMessage.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			out = append(out, Problem{Line: line, Message: m[2]})
			continue
		}
		out = append(out, Problem{Message: msg})
	}
	return out
}

func yamlProblem(err error) Problem {
	if m := lineMessage.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Message: "invalid YAML: " + m[2]}
	}
	return Problem{Message: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// sectionName names the part of the file a Go type decodes.
func sectionName(goType string) string {
	names := map[string]string{
		"Config": "the top level", "Server": "server", "Upstream": "upstream",
		"ClaimMapping": "upstream.claims", "Redis": "redis", "FHIR": "fhir",
		"Keys": "keys", "Tokens": "tokens", "RefreshPolicies": "refresh_policy",
		"RefreshPolicy": "a refresh policy", "Client": "a client", "Consent": "consent",
		"Credential": "a resource server or EHR credential", "EHR": "ehr", "PassThrough": "upstream.pass_through",
		"FHIRServer": "a fronted FHIR server", "PatientPicker": "fhir.patient_picker", "RedisTLS": "redis.tls",
		"Log": "log",
	}
	if n, ok := names[goType]; ok {
		return n
	}
	return goType
}

// readSecretFiles fills each secret from its _file companion.
func readSecretFiles(c *Config, lines map[string]int) []Problem {
	var problems []Problem
	read := func(path, file string, dst *string) {
		if file == "" {
			return
		}
		if *dst != "" {
			problems = append(problems, Problem{Path: path, Line: lines[path],
				Message: "set either the value or its _file companion, not both"})
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, Problem{Path: path, Line: lines[path],
				Message: fmt.Sprintf("cannot read %s: %v", file, errors.Unwrap(err))})
			return
		}
		*dst = strings.TrimRight(string(b), "\r\n")
	}
	read("server.cookie_secret_file", c.Server.CookieSecretFile, &c.Server.CookieSecret)
	read("upstream.client_secret_file", c.Upstream.ClientSecretFile, &c.Upstream.ClientSecret)
	read("redis.password_file", c.Redis.PasswordFile, &c.Redis.Password)
	for i := range c.Clients {
		p := fmt.Sprintf("clients[%d].client_secret_file", i)
		read(p, c.Clients[i].ClientSecretFile, &c.Clients[i].ClientSecret)
	}
	for i := range c.ResourceServers {
		p := fmt.Sprintf("resource_servers[%d].secret_file", i)
		read(p, c.ResourceServers[i].SecretFile, &c.ResourceServers[i].Secret)
	}
	for i := range c.EHR.LaunchClients {
		p := fmt.Sprintf("ehr.launch_clients[%d].secret_file", i)
		read(p, c.EHR.LaunchClients[i].SecretFile, &c.EHR.LaunchClients[i].Secret)
	}
	read("fhir.patient_picker.token_file", c.FHIR.Picker.TokenFile, &c.FHIR.Picker.Token)
	return problems
}
