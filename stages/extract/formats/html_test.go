package formats

import "testing"

func TestHTMLText(t *testing.T) {
	tests := []struct {
		name, contentType, html, want string
	}{
		{"white space collapses, blocks break lines", "text/html",
			"<div>  Spett.le\n   compagnia,</div><p>vi   scriviamo<br>per la polizza</p><p>Saluti</p>",
			"Spett.le compagnia,\nvi scriviamo\nper la polizza\n\nSaluti\n\n"},
		{"pre keeps its lines", "text/html",
			"<pre>Targa    Modello\nGH461XW  Ducato</pre>",
			"Targa    Modello\nGH461XW  Ducato\n\n"},
		{"entities and inline elements", "text/html",
			"<p>Bianchi &amp; C. &ndash; <b>RC</b><i>auto</i> &euro; 1.000&nbsp;000</p>",
			"Bianchi & C. – RCauto € 1.000\u00a0000\n\n"},
		{"script, style, title and comments are dropped", "text/html",
			"<html><head><title>T</title><style>p{}</style></head><body><!-- nota --><script>if (a<b) x()</script><p>testo</p></body></html>",
			"testo\n\n"},
		{"unclosed cells and rows", "text/html",
			"<table><tr><td>a<td>b<tr><td>c<td><td>d</table>",
			"a\tb\nc\t\td\n\n"},
		{"meta charset latin-1", "text/html",
			"<meta charset=\"iso-8859-1\"><p>propriet\xe0</p>",
			"proprietà\n\n"},
		{"charset from the content type", "text/html; charset=windows-1252",
			"<p>\x93polizza\x94</p>",
			"“polizza”\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readHTMLFile([]byte(tt.html), tt.contentType, Limits{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
