// Package chrome drives headless Chromium for smartgate's browser tests,
// through the Chrome DevTools Protocol (github.com/chromedp/chromedp). It
// starts the browser and opens tabs that share no cookies or storage. A
// test can navigate, click, type keys, read text and attributes, take
// screenshots and check a page with axe-core.
//
// Chromium must be installed (Debian package chromium). A missing binary
// fails the test with the command that installs it: these tests are never
// skipped.
package chrome

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/smartgate/smartgate/internal/testenv"
)

// Key values for Page.Press.
const (
	Tab   = kb.Tab
	Enter = kb.Enter
	Space = " "
)

// Shift is the modifier for Page.Press, as in Shift+Tab.
const Shift = chromedp.ModifierShift

const (
	startTimeout  = 30 * time.Second
	actionTimeout = 15 * time.Second
	pollInterval  = 20 * time.Millisecond
	viewHeight    = 800 // CSS pixels of the emulated viewport's height
)

// flags keep Chromium from contacting any server but the ones a test
// navigates to. The host resolver rule fails every host name except
// 127.0.0.1 and localhost, so a request that escapes the other flags
// still cannot leave the machine by name.
var flags = []chromedp.ExecAllocatorOption{
	chromedp.NoSandbox,
	chromedp.DisableGPU,
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("no-first-run", true),
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("disable-domain-reliability", true),
	chromedp.Flag("no-pings", true),
	chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"),
	// Pages pick their language from Accept-Language, so fix it.
	chromedp.Flag("lang", "en-US"),
	chromedp.Flag("accept-lang", "en-US,en"),
}

// Browser is a running headless Chromium.
type Browser struct {
	ctx context.Context // the browser's first tab; other tabs derive from it
}

// Start starts headless Chromium and registers its stop with cleanup. The
// profile lives in a fresh temporary user data directory, which chromedp
// (v0.23.1) creates for each browser and removes after the browser exits.
func Start(t testing.TB, cleanup *testenv.Cleanup) *Browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chrome: chromium not found on PATH; install it (Debian: apt-get install -y chromium)")
	}
	output := &testenv.LockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.CombinedOutput(output))
	opts = append(opts, flags...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	stop := func() {
		closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = chromedp.Cancel(closeCtx) // closes the browser gracefully, or gives up at the timeout
		cancel()
		cancelBrowser()
		cancelAlloc() // kills a browser that still runs and waits until its user data directory is removed
	}

	// The first action starts the process. Its context must have no
	// deadline, because the browser lives as long as that context, so a
	// timer bounds the start instead.
	timer := time.AfterFunc(startTimeout, cancelBrowser)
	err = chromedp.Do(ctx)
	timer.Stop()
	if err != nil {
		stop()
		t.Fatalf("chrome: start %s: %v\nbrowser output:\n%s", bin, err, output.String())
	}
	cleanup.Add(stop)
	return &Browser{ctx: ctx}
}

// Page is one tab. Each page has its own browser context, so pages share
// no cookies, storage or cache.
type Page struct {
	t   testing.TB
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// NewPage opens a tab in a new browser context. It is closed when the
// test ends.
func (b *Browser) NewPage(t testing.TB) *Page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	timer := time.AfterFunc(actionTimeout, cancel)
	err := chromedp.Do(ctx)
	timer.Stop()
	if err != nil {
		cancel()
		t.Fatalf("chrome: open a tab: %v", err)
	}
	p := &Page{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m.String())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p
}

// Console returns what the page wrote to its console so far: console API
// calls, uncaught exceptions and browser log entries such as blocked
// requests.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// run runs an action with the action timeout, and fails the test with the
// page's URL and console when it fails.
func run[T any](p *Page, step string, action chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		p.fail(step, err)
	}
	return v
}

func (p *Page) fail(step string, err error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Second)
	defer cancel()
	where, locErr := chromedp.Run(ctx, chromedp.Location())
	if locErr != nil {
		where = "unknown (" + locErr.Error() + ")"
	}
	p.t.Fatalf("chrome: %s: %v\npage: %s\nconsole:\n%s", step, err, where, strings.Join(p.Console(), "\n"))
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(url string) {
	p.t.Helper()
	run(p, "navigate to "+url, chromedp.Navigate(url))
}

// Location returns the URL of the page.
func (p *Page) Location() string {
	p.t.Helper()
	return run(p, "read the location", chromedp.Location())
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (p *Page) WaitVisible(selector string) {
	p.t.Helper()
	run(p, "wait for "+selector+" to be visible", chromedp.WaitVisible(chromedp.CSS(selector)))
}

// WaitLoaded waits until the current document and its subresources have
// loaded (document.readyState is "complete"). It tolerates the moments of
// a navigation when no document can be read.
func (p *Page) WaitLoaded() {
	p.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(p.ctx, time.Second)
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`))
		cancel()
		if err == nil && state == "complete" {
			return
		}
		lastErr = err
		time.Sleep(pollInterval)
	}
	p.fail("wait for the page to load", fmt.Errorf("timed out after %v (last error: %v)", actionTimeout, lastErr))
}

// Click clicks the center of the first visible element matching the CSS
// selector with the mouse.
func (p *Page) Click(selector string) {
	p.t.Helper()
	run(p, "click "+selector, chromedp.Click(chromedp.CSS(selector)))
}

// SendKeys focuses the first visible element matching the CSS selector and
// types text as key events.
func (p *Page) SendKeys(selector, text string) {
	p.t.Helper()
	run(p, "type into "+selector, chromedp.SendKeys(chromedp.CSS(selector), text))
}

// Press sends keys (such as Tab, Enter or Space) as key events to the
// focused element, holding the given modifiers.
func (p *Page) Press(keys string, modifiers ...chromedp.Modifier) {
	p.t.Helper()
	run(p, fmt.Sprintf("press %q", keys), chromedp.KeyEvent(keys, chromedp.KeyModifiers(modifiers...)))
}

// Text returns the visible text of the first element matching the CSS
// selector, as innerText renders it.
func (p *Page) Text(selector string) string {
	p.t.Helper()
	return run(p, "read the text of "+selector, chromedp.Text(chromedp.CSS(selector)))
}

// Attribute returns an HTML attribute of the first element matching the
// CSS selector, and whether the element has it.
func (p *Page) Attribute(selector, name string) (string, bool) {
	p.t.Helper()
	r := run(p, "read "+name+" of "+selector, chromedp.AttributeValue(chromedp.CSS(selector), name))
	return r.Value, r.Exists
}

// Property returns a DOM property (such as checked) of the first element
// matching the CSS selector.
func Property[T any](p *Page, selector, name string) T {
	p.t.Helper()
	return run(p, "read the property "+name+" of "+selector, chromedp.JavascriptAttribute[T](chromedp.CSS(selector), name))
}

// Evaluate runs a JavaScript expression in the page and decodes its value.
func Evaluate[T any](p *Page, expression string) T {
	p.t.Helper()
	return run(p, "evaluate "+expression, chromedp.Evaluate[T](expression))
}

// Element describes a DOM element.
type Element struct {
	Tag     string `json:"tag"` // lower case
	ID      string `json:"id"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Value   string `json:"value"`
	Checked bool   `json:"checked"`
}

func (e Element) String() string {
	s := e.Tag
	if e.ID != "" {
		s += "#" + e.ID
	}
	if e.Type != "" {
		s += "[type=" + e.Type + "]"
	}
	if e.Value != "" {
		s += fmt.Sprintf("[value=%q]", e.Value)
	}
	return s
}

// Focused returns the element that has the keyboard focus (the body when
// no element has it).
func (p *Page) Focused() Element {
	p.t.Helper()
	return Evaluate[Element](p, `(() => {
		const e = document.activeElement || document.body;
		return {tag: e.tagName.toLowerCase(), id: e.id || '', type: e.type || '', name: e.name || '',
			value: typeof e.value === 'string' ? e.value : '', checked: !!e.checked};
	})()`)
}

// SetViewport emulates a viewport of width by height CSS pixels at a
// device scale factor of 1.
func (p *Page) SetViewport(width, height int) {
	p.t.Helper()
	run(p, fmt.Sprintf("set the viewport to %dx%d", width, height), chromedp.EmulateViewport(int64(width), int64(height)))
}

// Screenshot sets the viewport to width CSS pixels and returns a PNG of the
// whole page. The image is as wide as the page's content, so a page that
// overflows the viewport sideways gives an image wider than width.
func (p *Page) Screenshot(width int) []byte {
	p.t.Helper()
	p.SetViewport(width, viewHeight)
	return run(p, fmt.Sprintf("take a screenshot at %d px", width), func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		metrics, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		if metrics.CSSContentSize == nil {
			return nil, errors.New("the browser reported no content size")
		}
		clip := &page.Viewport{
			Width:  math.Max(float64(width), math.Ceil(metrics.CSSContentSize.Width)),
			Height: math.Ceil(metrics.CSSContentSize.Height),
			Scale:  1,
		}
		shot, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng, Clip: clip,
			CaptureBeyondViewport: new(true), FromSurface: new(true),
		})
		if err != nil {
			return nil, err
		}
		return shot.Data, nil
	})
}

// Violation is an axe-core rule that the page fails.
type Violation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"` // minor, moderate, serious or critical
	Help    string   `json:"help"`
	Targets []string `json:"targets"` // CSS selectors of the failing elements
}

func (v Violation) String() string {
	return fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
}

// axeTags select the axe-core rules of WCAG 2.0 and 2.1, levels A and AA.
const axeTags = `['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']`

// Axe injects axe-core (node_modules/axe-core/axe.min.js of the Node
// folder) into the page, runs it with the WCAG 2.0 and 2.1 A and AA rules,
// and returns the violations. The script runs through the DevTools
// protocol, which the page's Content-Security-Policy does not restrict.
//
// NOTE: axe-core's preload is off, because a page whose CSP has no
// connect-src blocks the requests with which it fetches the style sheets
// again. Without them the rule css-orientation-lock reports nothing.
func (p *Page) Axe() []Violation {
	p.t.Helper()
	path := filepath.Join(testenv.NodeDir(p.t), "node_modules", "axe-core", "axe.min.js")
	source, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatalf("chrome: read axe-core: %v; run: (cd %s && npm ci)", err, testenv.NodeDir(p.t))
	}
	// The trailing undefined keeps the protocol from serializing the value
	// of the script's last statement.
	run(p, "inject axe-core", chromedp.Evaluate[chromedp.Void](string(source)+"\n;undefined"))
	return run(p, "run axe-core", chromedp.Evaluate[[]Violation](`axe.run(document, {runOnly: {type: 'tag', values: `+axeTags+`}, preload: false})
		.then(r => r.violations.map(v => ({
			id: v.id, impact: v.impact || '', help: v.help,
			targets: v.nodes.map(n => n.target.flat(Infinity).join(' ')),
		})))`, chromedp.EvalAwaitPromise))
}
