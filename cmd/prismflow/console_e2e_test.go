package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"prismflow/pipeline/testenv"
)

// The reviewer console end to end: the real binary serves it, a real
// headless chromium uses it, a real insurance document goes through all
// seven stages underneath. The tests rely only on the DOM hooks the
// console promises (data-testid and data-* attributes) and its documented
// keys, never on its wording or layout, so that the Italian and English
// texts can change freely.

// consoleDocument is an Italian building insurance request: the form of
// insurance-dev item 0011 with a start date in the past and the
// reconstruction value without its currency, so that the built-in rules
// write three feedback items on it (missing tax code, amount without
// currency, start date in the past) now and in any later year.
// testdata/console/scheda-fabbricato.html is its source, printed to PDF
// by chromium.
const consoleDocument = "testdata/console/scheda-fabbricato.pdf"

// TestConsoleReviewerWorkflow is a reviewer's day on a console that
// requires sign-in: sign in with an API key, upload a document and watch
// it go through the pipeline live, review it (feedback decisions by mouse
// and by keyboard, a field correction), ask about it, download its form,
// look at the pipeline, and sign out. The browser console must stay free of errors throughout.
func TestConsoleReviewerWorkflow(t *testing.T) {
	chromiumPath(t)
	p := startPrismflowWith(t, testenv.Postgres(t), "", "",
		"PRISMFLOW_AUTH_REQUIRED=true",
		"PRISMFLOW_CONSOLE_CHAT_PROVIDER=rules",
	)
	key := createAPIKey(t, p, "navigli", "e2e-reviewer")
	pdf, err := filepath.Abs(consoleDocument)
	if err != nil {
		t.Fatal(err)
	}
	b := newConsoleBrowser(t, p.api, "it-IT,it")

	// Signed out, the console sends the reviewer to its sign-in page.
	b.open("/")
	b.visible(`form[data-testid=signin-form]`)
	if path := evalJS[string](b, `location.pathname`); path != "/signin" {
		t.Errorf("signed out, / led to %s, want /signin", path)
	}
	b.typeInto(`form[data-testid=signin-form] input[name=api_key]`, key)
	b.click(`button[data-testid=signin-submit]`)
	b.visible(`table[data-testid=inbox]`)
	if lang := evalJS[string](b, `document.documentElement.lang`); lang != "it" {
		t.Errorf(`<html lang=%q>, want "it" for an Italian browser`, lang)
	}

	// Upload through the inbox's form. A marker on the window proves that
	// the page is never reloaded from here until the document is done: the
	// new row and its status arrive live.
	evalJS[bool](b, `window.prismflowE2E = true`)
	b.do("choose the file", chromedp.SetUploadFiles(chromedp.CSS(`form[data-testid=upload-form] input[type=file][name=file]`), []string{pdf}))
	b.click(`button[data-testid=upload-submit]`)
	const rows = `document.querySelectorAll('table[data-testid=inbox] tr[data-doc-id]')`
	b.waitFor("the uploaded document's row", stepTimeout, rows+`.length > 0`,
		`'upload form: ' + document.querySelector('form[data-testid=upload-form]')?.textContent.replace(/\s+/g, ' ') + '; inbox: ' + document.querySelector('table[data-testid=inbox]')?.outerHTML`)
	id := evalJS[string](b, rows+`[0].dataset.docId`)
	row := fmt.Sprintf(`tr[data-doc-id=%s]`, jsString(id))
	rowJS := fmt.Sprintf(`document.querySelector('%s')`, row)
	if !evalJS[bool](b, rowJS+`?.querySelector('[data-testid=status]') != null`) {
		t.Errorf("the row of %s has no [data-testid=status] cell", id)
	}
	b.waitUnless("the document reaching done in the inbox", 2*time.Minute,
		rowJS+`?.dataset.status === 'done'`,
		rowJS+`?.dataset.status === 'failed'`,
		`'row: ' + `+rowJS+`?.outerHTML`)
	if !evalJS[bool](b, `window.prismflowE2E === true`) {
		t.Fatal("the inbox reloaded between the upload and done; the row must update live")
	}
	b.screenshot("inbox")

	// Open it from its row.
	b.click(row + ` a[href*="/documents/` + id + `"]`)
	b.visible(`[data-testid=doc-status][data-status=done]`)
	if got := evalJS[string](b, `location.pathname`); got != "/documents/"+id {
		t.Errorf("the row's link led to %s, want /documents/%s", got, id)
	}
	checkDocumentPage(t, b)
	b.screenshot("document")

	// Decide on two feedback items, the second with a comment.
	items := evalJS[[]string](b, `[...document.querySelectorAll('[data-testid=feedback-item]')].map(e => e.dataset.itemId)`)
	if len(items) < 3 {
		t.Fatalf("%d feedback items on the page, want the 3 the rules find in %s", len(items), consoleDocument)
	}
	accepted, rejected := itemSelector(items[0]), itemSelector(items[1])
	const comment = "Già verificato al telefono con l'amministratore"
	b.click(accepted + ` button[data-testid=accept]`)
	b.visible(accepted + ` [data-testid=decision][data-action=accept]`)
	b.typeInto(rejected+` textarea[name=comment]`, comment)
	b.click(rejected + ` button[data-testid=reject]`)
	b.visible(rejected + ` [data-testid=decision][data-action=reject]`)

	// Correct a field, after checking where it came from.
	const fieldName, corrected = "contraente", "Condominio Giambellino 118 Milano"
	field := fmt.Sprintf(`[data-testid=field][data-field=%s]`, fieldName)
	original := strings.TrimSpace(evalJS[string](b, fmt.Sprintf(`document.querySelector('%s [data-testid=field-value]')?.textContent ?? ''`, field)))
	if original == "" {
		t.Fatalf("no value shown for the field %s: %s", fieldName,
			evalJS[string](b, `[...document.querySelectorAll('[data-testid=field]')].map(e => e.dataset.field).join(', ')`))
	}
	b.click(field + ` [data-testid=field-source]`)
	b.visible(`mark[data-testid=highlight]`)
	if got := strings.TrimSpace(evalJS[string](b, `document.querySelector('mark[data-testid=highlight]').textContent`)); got != original {
		t.Errorf("the field %s highlights %q in the text, want its value %q", fieldName, got, original)
	}
	form := fmt.Sprintf(`form[data-testid=correction-form][data-field=%s]`, fieldName)
	b.typeInto(form+` input[name=value]`, corrected)
	b.click(form + ` button[data-testid=correction-submit]`)
	b.visible(field + `[data-corrected=true]`)

	// After a reload all three are still there.
	b.reload()
	b.visible(`[data-testid=doc-status]`)
	b.visible(accepted + ` [data-testid=decision][data-action=accept]`)
	b.visible(rejected + ` [data-testid=decision][data-action=reject]`)
	if !evalJS[bool](b, fmt.Sprintf(`document.querySelector('%s').textContent.includes(%s)`, rejected, jsString(comment))) {
		t.Errorf("the rejected item does not show its comment %q after a reload", comment)
	}
	b.visible(field + `[data-corrected=true]`)
	if got := strings.TrimSpace(evalJS[string](b, fmt.Sprintf(`document.querySelector('%s [data-testid=field-value]').textContent`, field))); got != corrected {
		t.Errorf("field %s shows %q after the correction, want %q", fieldName, got, corrected)
	}
	if got := evalJS[string](b, fmt.Sprintf(`document.querySelector('%s [data-testid=field-original]')?.textContent ?? '(none)'`, field)); !strings.Contains(got, original) {
		t.Errorf("field %s shows the original %q, want it to show %q", fieldName, got, original)
	}

	// The third item with the keyboard alone: j moves to the next item,
	// r rejects the one with the focus.
	byKeys := itemSelector(items[2])
	b.do("press j three times", chromedp.KeyEvent("jjj"))
	if !evalJS[bool](b, fmt.Sprintf(`document.activeElement?.closest('[data-testid=feedback-item]')?.matches('%s') ?? false`, byKeys)) {
		t.Errorf("after j j j the focus is on %s, want the third feedback item",
			evalJS[string](b, `document.activeElement?.outerHTML.slice(0, 200)`))
	}
	b.do("press r", chromedp.KeyEvent("r"))
	b.visible(byKeys + ` [data-testid=decision][data-action=reject]`)

	// Ask about the document; the retrieval answer cites a section, and
	// the citation leads to it. The answer is kept with the document.
	askAndFollowCitation(t, b, "Qual è il valore di ricostruzione a nuovo del fabbricato?")
	b.screenshot("chat")
	b.reload()
	b.visible(`[data-testid=chat-answer][data-done=true]`)
	b.visible(byKeys + ` [data-testid=decision][data-action=reject]`)

	// The filled form downloads with the session alone.
	checkDownload(t, b, `a[data-testid=download-form]`, "%PDF-")
	checkDownload(t, b, `a[data-testid=download-reply]`, "")

	// The pipeline page shows every stage.
	b.open("/pipeline")
	for _, stage := range stageOrder {
		b.visible(fmt.Sprintf(`tr[data-testid=stage-row][data-stage=%s]`, stage))
	}
	b.screenshot("pipeline")

	// Signed out, the session is gone.
	b.click(`button[data-testid=signout]`)
	b.visible(`form[data-testid=signin-form]`)
	b.open("/")
	b.visible(`form[data-testid=signin-form]`)
}

// TestConsoleWithoutAuthSpeaksTheBrowsersLanguage opens the console of a
// loopback run without keys (the embedded `make run`): the inbox comes
// straight away, in Italian unless the browser prefers English.
func TestConsoleWithoutAuthSpeaksTheBrowsersLanguage(t *testing.T) {
	chromiumPath(t)
	p := startPrismflow(t, testenv.Postgres(t))
	b := newConsoleBrowser(t, p.api, "it-IT,it")
	headers := map[string]string{}
	for _, c := range []struct{ langs, want string }{
		{"it-IT,it", "it"},
		{"en-GB,en", "en"},
		{"fr-FR,fr", "it"}, // neither: Italian, the default
	} {
		b.setLanguage(c.langs)
		b.open("/")
		b.visible(`table[data-testid=inbox]`)
		if evalJS[bool](b, `document.querySelector('form[data-testid=signin-form]') != null`) {
			t.Errorf("browser languages %s: a sign-in form with auth off", c.langs)
		}
		if lang := evalJS[string](b, `document.documentElement.lang`); lang != c.want {
			t.Errorf("browser languages %s: <html lang=%q>, want %q", c.langs, lang, c.want)
		}
		headers[c.want] = evalJS[string](b, `document.querySelector('table[data-testid=inbox]').tHead?.textContent.replace(/\s+/g, ' ').trim() ?? ''`)
	}
	if headers["it"] == "" || headers["it"] == headers["en"] {
		t.Errorf("the inbox's column headers are %q in Italian and %q in English; want two different, non-empty texts", headers["it"], headers["en"])
	}
}

// createAPIKey runs `prismflow apikey create` against the instance's
// database and returns the key it prints.
func createAPIKey(t *testing.T, p *instance, tenant, name string) string {
	t.Helper()
	cmd := exec.Command(prismflowBinary(t), "apikey", "create", "--tenant", tenant, "--name", name)
	cmd.Env = p.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("prismflow apikey create: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatal("prismflow apikey create printed no key")
	}
	return fields[len(fields)-1]
}

func itemSelector(id string) string {
	return fmt.Sprintf(`[data-testid=feedback-item][data-item-id=%s]`, jsString(id))
}

// checkDocumentPage checks what a reviewer reads on a done document:
// the rendered first page (its image really loads), its text, the
// sections and the category.
func checkDocumentPage(t *testing.T, b *consoleBrowser) {
	t.Helper()
	const page1 = `[data-testid=page][data-page="1"]`
	b.do("scroll to page 1", chromedp.ScrollIntoView(chromedp.CSS(page1+` img[data-testid=page-image]`)))
	b.waitFor("page 1's image to load", stepTimeout,
		`(i => i?.complete && i.naturalWidth > 0)(document.querySelector('`+page1+` img[data-testid=page-image]'))`,
		`document.querySelector('`+page1+`')?.outerHTML.slice(0, 2000)`)
	if src := evalJS[string](b, `document.querySelector('`+page1+` img[data-testid=page-image]').getAttribute('src')`); !strings.Contains(src, "/pages/1.png") {
		t.Errorf("page 1's image is %q, want /documents/{id}/pages/1.png?w=...", src)
	}
	if text := evalJS[string](b, `document.querySelector('`+page1+` [data-testid=page-text]')?.textContent ?? ''`); !strings.Contains(text, "Giambellino") {
		t.Errorf("page 1's text %q lacks the document's text", text)
	}
	if n := evalJS[int](b, `document.querySelectorAll('section[data-testid=section][id^="section-"]').length`); n < 2 {
		t.Errorf("%d sections shown, want the document's 5", n)
	}
	if cat := evalJS[string](b, `document.querySelector('[data-testid=category]')?.textContent ?? ''`); strings.TrimSpace(cat) == "" {
		t.Error("no category shown")
	}
}

// askAndFollowCitation asks a question in the chat, waits for the whole
// answer and clicks its first citation, which must lead to the section
// it names.
func askAndFollowCitation(t *testing.T, b *consoleBrowser, question string) {
	t.Helper()
	const answers = `document.querySelectorAll('[data-testid=chat-answer]')`
	before := evalJS[int](b, answers+`.length`)
	b.typeInto(`form[data-testid=chat-form] textarea[name=question]`, question)
	b.click(`button[data-testid=chat-submit]`)
	b.waitFor("the chat answer", 2*time.Minute,
		fmt.Sprintf(`%s.length > %d && [...%s].at(-1).dataset.done === 'true'`, answers, before, answers),
		`document.querySelector('form[data-testid=chat-form]')?.parentElement?.outerHTML.slice(-3000)`)
	const last = `[...` + answers + `].at(-1)`
	if g := evalJS[string](b, last+`.dataset.grounding`); g != "retrieval" {
		t.Errorf("the rules provider's answer has data-grounding=%q, want retrieval", g)
	}
	if text := evalJS[string](b, last+`.textContent.trim()`); text == "" {
		t.Error("the chat answer is empty")
	}
	hrefs := evalJS[[]string](b, `[...`+last+`.querySelectorAll('a[data-testid=citation]')].map(a => a.getAttribute('href'))`)
	if len(hrefs) == 0 {
		t.Fatalf("the answer cites no section: %s", evalJS[string](b, last+`.outerHTML`))
	}
	target := strings.TrimPrefix(hrefs[0], "#")
	if !strings.HasPrefix(hrefs[0], "#section-") {
		t.Fatalf("the citation's href is %q, want #section-N", hrefs[0])
	}
	if !evalJS[bool](b, fmt.Sprintf(`document.getElementById(%s)?.matches('section[data-testid=section]') ?? false`, jsString(target))) {
		t.Fatalf("the citation %s points to no section on the page", hrefs[0])
	}
	b.settle()
	b.do("click the citation", chromedp.Click(chromedp.JSPath(last+`.querySelector('a[data-testid=citation]')`)))
	b.waitFor("the cited section scrolled into view", stepTimeout,
		fmt.Sprintf(`location.hash === %s && (r => r.top < innerHeight && r.bottom > 0)(document.getElementById(%s).getBoundingClientRect())`, jsString(hrefs[0]), jsString(target)),
		`location.hash + ' ' + JSON.stringify(document.getElementById(`+jsString(target)+`).getBoundingClientRect())`)
}

// checkDownload fetches a download link's target from the page, with the
// page's session only, and checks that it is served and starts with
// prefix.
func checkDownload(t *testing.T, b *consoleBrowser, link, prefix string) {
	t.Helper()
	b.visible(link)
	res := evalJS[struct {
		Status int    `json:"status"`
		Head   string `json:"head"`
		Size   int    `json:"size"`
	}](b, `(async () => {
		const r = await fetch(document.querySelector('`+link+`').href);
		const body = new Uint8Array(await r.arrayBuffer());
		return {status: r.status, head: String.fromCharCode(...body.slice(0, 16)), size: body.length};
	})()`)
	if res.Status != 200 || res.Size == 0 || !strings.HasPrefix(res.Head, prefix) {
		t.Errorf("%s: HTTP %d, %d bytes starting %q; want 200 and %q", link, res.Status, res.Size, res.Head, prefix)
	}
}
