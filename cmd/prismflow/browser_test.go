package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The console tests drive Debian's chromium, headless, over the DevTools
// protocol (chromedp): the browser a reviewer uses, not an HTML parser, so
// scripts, live updates, htmx swaps and cookies all run for real.

// chromiumPath returns the system chromium. Without it the test is skipped
// on a developer machine, but fails in CI (CI=true), where a skipped
// browser test would hide a console that no longer works.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	const install = "install the Debian package chromium (ops/install-deps.sh test does)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium is missing at /usr/bin/chromium: %s", install)
	}
	t.Skipf("chromium is missing at /usr/bin/chromium: %s; with CI=true this test fails instead", install)
	return ""
}

// artifactsDir is where tests leave files for a human to look at
// (screenshots): $PRISMFLOW_TEST_ARTIFACTS, or artifacts/ at the root of
// the repository (ignored by git).
func artifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PRISMFLOW_TEST_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts folder: %v", err)
	}
	return dir
}

// stepTimeout bounds one browser step (a navigation, a click, a query
// that waits for its element); waits on the pipeline take their own.
const stepTimeout = 60 * time.Second

// consoleBrowser is one headless chromium with one tab on the console at
// base. It records every console error and uncaught exception of the
// pages it shows; the test fails on any of them when it ends.
type consoleBrowser struct {
	t    *testing.T
	ctx  context.Context // the tab; steps derive their deadlines from it
	base string          // http://host:port

	mu       sync.Mutex
	problems []string
	console  chan struct{} // closed once the console reader has stopped
}

// newConsoleBrowser starts chromium with a laptop-sized window whose
// requests ask for langs (see setLanguage).
func newConsoleBrowser(t *testing.T, base, langs string) *consoleBrowser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox (CI containers).
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	b := &consoleBrowser{t: t, ctx: ctx, base: base, console: make(chan struct{})}
	// The first step starts the browser and binds its life to ctx, so it
	// runs without a deadline; a browser that cannot start fails it.
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(b.console)
		for m, err := range messages {
			if err != nil {
				return // the tab is closing
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b.saveScreenshot("failure-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
		}
		cancelTab()
		cancelAlloc()
		<-b.console
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("browser console: %s", p)
		}
	})
	b.setLanguage(langs)
	return b
}

// setLanguage makes the tab prefer the languages of langs ("en-GB,en",
// most preferred first) from now on, as a browser set to them does:
// chromium weighs them itself in the Accept-Language header it sends
// ("en-GB,en;q=0.9"), so langs carries no q values.
func (b *consoleBrowser) setLanguage(langs string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		b.t.Fatalf("browser version: %v", err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
		UserAgent:      v.UserAgent,
		AcceptLanguage: langs,
	}); err != nil {
		b.t.Fatalf("set the languages %q: %v", langs, err)
	}
}

// do runs steps in the tab; what names them in a failure.
func (b *consoleBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates to path on the console and waits for the page's load.
func (b *consoleBrowser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

// reload reloads the page, as a reviewer pressing F5 does.
func (b *consoleBrowser) reload() {
	b.t.Helper()
	b.do("reload", chromedp.Reload())
}

// visible waits until an element matching the CSS selector is shown.
func (b *consoleBrowser) visible(css string) {
	b.t.Helper()
	b.do("wait for "+css, chromedp.WaitVisible(chromedp.CSS(css)))
}

// click clicks the first element matching the CSS selector with the
// mouse, once it is visible and the page has stopped scrolling.
func (b *consoleBrowser) click(css string) {
	b.t.Helper()
	b.visible(css)
	b.settle()
	b.do("click "+css, chromedp.Click(chromedp.CSS(css)))
}

// settle waits until the page has not scrolled for a few frames. A mouse
// click lands where its element was when the click was aimed, so one
// aimed during a smooth scroll (the console scrolls to a highlighted
// field) would hit whatever scrolled under the pointer instead.
func (b *consoleBrowser) settle() {
	b.t.Helper()
	evalJS[bool](b, `new Promise(done => {
		let x = scrollX, y = scrollY, still = 0;
		const frame = () => {
			if (scrollX === x && scrollY === y) {
				if (++still >= 5) return done(true);
			} else {
				x = scrollX; y = scrollY; still = 0;
			}
			requestAnimationFrame(frame);
		};
		requestAnimationFrame(frame);
	})`)
}

// typeInto replaces the text of a field by typing v into it.
func (b *consoleBrowser) typeInto(css, v string) {
	b.t.Helper()
	b.visible(css)
	evalJS[string](b, "document.querySelector("+jsString(css)+").value = ''")
	b.do("type into "+css, chromedp.SendKeys(chromedp.CSS(css), v))
}

// evalJS evaluates a JavaScript expression in the page (awaiting it when
// it is a promise) and decodes its value as T.
func evalJS[T any](b *consoleBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds, for up to timeout;
// explain is an expression whose value describes the page in the failure
// when the condition never holds.
func (b *consoleBrowser) waitFor(what string, timeout time.Duration, cond, explain string) {
	b.t.Helper()
	b.waitUnless(what, timeout, cond, "false", explain)
}

// waitUnless is waitFor that stops early, failing, once giveUp holds (a
// document that failed will never be done).
func (b *consoleBrowser) waitUnless(what string, timeout time.Duration, cond, giveUp, explain string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		state := evalJS[[2]bool](b, fmt.Sprintf("[Boolean(%s), Boolean(%s)]", cond, giveUp))
		if state[0] {
			return
		}
		switch {
		case state[1]:
			b.t.Fatalf("%s: never, since %s; %s", what, giveUp, evalJS[string](b, "String("+explain+")"))
		case time.Now().After(deadline):
			b.t.Fatalf("%s: not within %v; %s", what, timeout, evalJS[string](b, "String("+explain+")"))
		}
		select {
		case <-b.ctx.Done():
			b.t.Fatalf("%s: %v", what, b.ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// screenshot saves a full-page PNG under the artifacts folder and logs
// its path.
func (b *consoleBrowser) screenshot(name string) string {
	b.t.Helper()
	path, err := b.trySaveScreenshot(name)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	return path
}

// saveScreenshot is screenshot for a test that already failed: an error
// is only logged.
func (b *consoleBrowser) saveScreenshot(name string) {
	if _, err := b.trySaveScreenshot(name); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

func (b *consoleBrowser) trySaveScreenshot(name string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", err
	}
	path := filepath.Join(artifactsDir(b.t), "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", err
	}
	b.t.Logf("screenshot: %s", path)
	return path, nil
}

// jsString quotes s as a JavaScript string literal (JSON is a subset).
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
