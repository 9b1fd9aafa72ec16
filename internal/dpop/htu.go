package dpop

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// defaultPorts are the ports that a URL of each scheme may leave out.
var defaultPorts = map[string]int{"http": 80, "https": 443}

// normalizeURL returns raw as scheme://host[:port]/path for comparing an
// htu claim with the request URL, without the query and fragment. RFC 9449
// section 4.3 recommends the normalizations of RFC 3986 sections 6.2.2 and
// 6.2.3. These are applied: scheme and host in lower case, percent-encoding
// in upper case with unreserved characters decoded, no default port, and
// "/" for an empty path. Dot segments (RFC 3986 section 6.2.2.3) are
// compared as written.
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	defaultPort, ok := defaultPorts[scheme]
	switch {
	case !ok:
		return "", fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return "", errors.New("not an absolute URL")
	case u.User != nil:
		return "", errors.New("URL contains user information")
	}

	host := strings.ToLower(u.Hostname())
	switch {
	case host == "":
		return "", errors.New("empty host")
	case strings.Contains(host, "%"):
		return "", errors.New(`host contains "%" (an escape or an IPv6 zone), which is not supported`)
	}
	hostPort := host
	if strings.Contains(host, ":") {
		hostPort = "[" + host + "]" // IPv6 literal
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n > 65535 {
			return "", fmt.Errorf("invalid port %q", port)
		}
		if n != defaultPort {
			hostPort = net.JoinHostPort(host, strconv.Itoa(n))
		}
	}

	path := normalizePercentEncoding(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + hostPort + path, nil
}

// normalizePercentEncoding writes the hex digits of each percent-encoded
// octet in upper case and decodes the octets of unreserved characters.
// url.Parse has rejected malformed escapes already.
func normalizePercentEncoding(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+2 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		octet, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			b.WriteByte(s[i])
			continue
		}
		if isUnreserved(byte(octet)) {
			b.WriteByte(byte(octet))
		} else {
			b.WriteString("%" + strings.ToUpper(s[i+1:i+3]))
		}
		i += 2
	}
	return b.String()
}

// isUnreserved reports whether c is an unreserved character of RFC 3986
// section 2.3.
func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
