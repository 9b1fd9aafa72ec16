package testenv

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser is a headless HTTP client with a cookie jar that follows
// redirects until it reaches a URL under one of the stop prefixes (an
// app's redirect URI), which it does not fetch.
type Browser struct {
	t        testing.TB
	client   *http.Client
	stops    []string
	noFollow bool
}

// NewBrowser returns a browser that stops at URLs starting with stops.
func NewBrowser(t testing.TB, stops ...string) *Browser {
	jar, _ := cookiejar.New(nil)
	b := &Browser{t: t, stops: stops}
	b.client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > 20 {
			return errors.New("too many redirects")
		}
		if b.noFollow || b.isStop(req.URL.String()) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

func (b *Browser) isStop(u string) bool {
	for _, s := range b.stops {
		if strings.HasPrefix(u, s) {
			return true
		}
	}
	return false
}

// Page is a response the browser stopped at.
type Page struct {
	URL      *url.URL // the page's URL after redirects
	Status   int
	Location string // set when the browser stopped at a redirect
	Body     string
	Header   http.Header
}

// Get fetches u and follows redirects.
func (b *Browser) Get(u string) *Page {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatalf("browser: GET %s: %v", u, err)
	}
	return b.read(resp)
}

// Post submits form values to u and follows redirects.
func (b *Browser) Post(u string, form url.Values) *Page {
	b.t.Helper()
	resp, err := b.client.PostForm(u, form)
	if err != nil {
		b.t.Fatalf("browser: POST %s: %v", u, err)
	}
	return b.read(resp)
}

// Do sends a prepared request through the browser's jar and redirect rules.
func (b *Browser) Do(req *http.Request) *Page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("browser: %s %s: %v", req.Method, req.URL, err)
	}
	return b.read(resp)
}

func (b *Browser) read(resp *http.Response) *Page {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("browser: read %s: %v", resp.Request.URL, err)
	}
	return &Page{URL: resp.Request.URL, Status: resp.StatusCode, Location: resp.Header.Get("Location"),
		Body: string(body), Header: resp.Header}
}

// Form is the one form of a page.
type Form struct {
	Action string
	Fields url.Values // hidden, text and password inputs, and checked checkboxes
	Boxes  []Checkbox // every enabled checkbox, checked or not
}

// Checkbox is a checkbox input.
type Checkbox struct {
	Name, Value, Label string
	Checked            bool
}

var (
	formTag  = regexp.MustCompile(`(?s)<form\b([^>]*)>(.*?)</form>`)
	attrRe   = regexp.MustCompile(`([a-zA-Z_:-]+)\s*=\s*"([^"]*)"`)
	inputTag = regexp.MustCompile(`<input\b([^>]*)>`)
	labelTag = regexp.MustCompile(`(?s)<label for="([^"]*)">(.*?)</label>`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	if strings.Contains(s, " checked") {
		m["checked"] = "checked"
	}
	if strings.Contains(s, " disabled") {
		m["disabled"] = "disabled"
	}
	return m
}

// Form parses the page's first form; its action is resolved against the
// page URL.
func (p *Page) Form(t testing.TB) *Form {
	t.Helper()
	forms := p.Forms(t)
	if len(forms) == 0 {
		t.Fatalf("browser: no form on %s (status %d):\n%s", p.URL, p.Status, p.Body)
	}
	return forms[0]
}

// Forms parses every form of the page.
func (p *Page) Forms(t testing.TB) []*Form {
	t.Helper()
	var out []*Form
	for _, m := range formTag.FindAllStringSubmatch(p.Body, -1) {
		action, err := p.URL.Parse(attrs(m[1])["action"])
		if err != nil {
			t.Fatalf("browser: form action: %v", err)
		}
		labels := map[string]string{}
		for _, l := range labelTag.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = strings.TrimSpace(html.UnescapeString(l[2]))
		}
		f := &Form{Action: action.String(), Fields: url.Values{}}
		for _, in := range inputTag.FindAllStringSubmatch(m[2], -1) {
			a := attrs(in[1])
			if a["name"] == "" || a["disabled"] != "" {
				continue
			}
			switch a["type"] {
			case "checkbox":
				cb := Checkbox{Name: a["name"], Value: a["value"], Label: labels[a["id"]], Checked: a["checked"] != ""}
				f.Boxes = append(f.Boxes, cb)
				if cb.Checked {
					f.Fields.Add(cb.Name, cb.Value)
				}
			case "submit", "button":
			default:
				f.Fields.Add(a["name"], a["value"])
			}
		}
		out = append(out, f)
	}
	return out
}

// Uncheck removes a checked checkbox value from the submission.
func (f *Form) Uncheck(name, value string) error {
	vals := f.Fields[name]
	for i, v := range vals {
		if v == value {
			f.Fields[name] = append(vals[:i:i], vals[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("no checked %s=%q in the form", name, value)
}

// Submit posts the form with extra values (such as the pressed button).
func (b *Browser) Submit(f *Form, extra url.Values) *Page {
	b.t.Helper()
	v := url.Values{}
	for k, vs := range f.Fields {
		v[k] = append([]string(nil), vs...)
	}
	for k, vs := range extra {
		v[k] = vs
	}
	return b.Post(f.Action, v)
}

// LogIn fills the upstream provider's login form on p with a user name and
// password and follows the redirects that come after it.
func (b *Browser) LogIn(p *Page, user, password string) *Page {
	b.t.Helper()
	f := p.Form(b.t)
	f.Fields.Set("login", user)
	f.Fields.Set("password", password)
	return b.Submit(f, nil)
}

// Cookie returns the value of a cookie the browser holds for rawURL.
func (b *Browser) Cookie(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// Stop adds a URL prefix at which the browser stops following redirects.
func (b *Browser) Stop(prefix string) { b.stops = append(b.stops, prefix) }

// GetOnce fetches u without following a redirect.
func (b *Browser) GetOnce(u string) *Page {
	b.t.Helper()
	b.noFollow = true
	defer func() { b.noFollow = false }()
	return b.Get(u)
}
