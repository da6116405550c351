package console

import (
	"testing"

	"prismflow/stages/persist"
)

func TestCitedLinksMarkersOfCitedSections(t *testing.T) {
	m := persist.ChatMessage{
		Text:      `1. «targa AB123CD» [S1]` + "\n" + `2. <b>x</b> [S0, S4] [S9]`,
		Citations: []persist.ChatCitation{{Section: 1, Quote: "targa AB123CD"}, {Section: 4}},
	}
	want := `1. «targa AB123CD» [<a class="cite" href="#section-1">§2</a>]` + "\n" +
		`2. &lt;b&gt;x&lt;/b&gt; [<a class="cite" href="#section-4">§5</a>] `
	if got := string(cited(m)); got != want {
		t.Errorf("cited:\n got %q\nwant %q", got, want)
	}
}
