package imap

import (
	"path"
	"strings"

	goimap "github.com/emersion/go-imap/v2"

	"prismflow/pipeline/config"
)

// attachment is what BODYSTRUCTURE tells of one attachment.
type attachment struct {
	contentType string
	filename    string
	size        int64 // encoded size
}

// attachments lists the parts of bs that are files: a part with a file
// name, or one whose disposition says attachment.
func attachments(bs goimap.BodyStructure) []attachment {
	var out []attachment
	if bs == nil {
		return nil
	}
	bs.Walk(func(_ []int, part goimap.BodyStructure) bool {
		p, ok := part.(*goimap.BodyStructureSinglePart)
		if !ok {
			return true
		}
		name := p.Filename()
		disp := p.Disposition()
		if name == "" && (disp == nil || !strings.EqualFold(disp.Value, "attachment")) {
			return true
		}
		out = append(out, attachment{contentType: p.MediaType(), filename: name, size: int64(p.Size)})
		return true
	})
	return out
}

// takes reports whether rules take a message with these attachments: at
// least one passes every rule set; with no rule set, every message.
func takes(r config.IMAPRules, atts []attachment) bool {
	if len(r.ContentTypes) == 0 && len(r.Filenames) == 0 && r.MaxBytes <= 0 {
		return true
	}
	for _, a := range atts {
		if passes(r, a) {
			return true
		}
	}
	return false
}

func passes(r config.IMAPRules, a attachment) bool {
	if r.MaxBytes > 0 && a.size > r.MaxBytes {
		return false
	}
	if len(r.ContentTypes) > 0 && !anyMatch(r.ContentTypes, a.contentType) {
		return false
	}
	if len(r.Filenames) > 0 && !anyMatch(r.Filenames, a.filename) {
		return false
	}
	return true
}

// anyMatch matches s against globs, case-insensitively ("image/*" and
// "*.PDF" both work); a malformed glob matches nothing.
func anyMatch(globs []string, s string) bool {
	s = strings.ToLower(s)
	for _, g := range globs {
		if ok, err := path.Match(strings.ToLower(g), s); err == nil && ok {
			return true
		}
	}
	return false
}
