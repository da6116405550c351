package chat

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"unicode/utf8"

	"prismflow/stages/internal/llm"
)

//go:embed prompts/chat.tmpl
var prompts embed.FS

// maxPromptBytes bounds the sections sent to the model (about 30,000
// tokens): a longer document is sent as its sections most related to the
// question, found by retrieval, so that a long policy does not overflow
// the model's context or the budget.
const maxPromptBytes = 120_000

// maxHistory earlier turns are shown to the model, each cut to
// maxTurnBytes: enough to resolve "and the second one?", without letting
// a long conversation crowd out the document.
const (
	maxHistory   = 8
	maxTurnBytes = 2000
)

// LLM answers with a language model, falling back to retrieval when the
// provider fails before writing anything.
type LLM struct {
	client   *llm.Client
	fallback *Retrieval
	prompt   *llm.Prompt
	log      *slog.Logger
}

// NewLLM returns the LLM answerer over client.
func NewLLM(client *llm.Client, fallback *Retrieval, log *slog.Logger) (*LLM, error) {
	if client == nil || fallback == nil {
		return nil, errors.New("chat: LLM answerer needs a client and a fallback")
	}
	p, err := llm.LoadPrompt(prompts, "prompts/chat.tmpl")
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LLM{client: client, fallback: fallback, prompt: p, log: log}, nil
}

// promptSection is a section as the template shows it.
type promptSection struct {
	Index int32
	Title string
	Pages string
	Text  string
}

// Answer implements Answerer.
func (l *LLM) Answer(ctx context.Context, q Question, emit func(string) error) (Answer, error) {
	if len(q.Sections) == 0 {
		// Nothing to ground an answer in (a document whose text could not
		// be read): the model would only guess, and it costs money.
		return l.fallback.Answer(ctx, q, emit)
	}
	lang := l.fallback.questionLanguage(q)
	sections, omitted := l.promptSections(q, lang)
	system, user, err := l.prompt.Render(map[string]any{
		"Language": lang, "Sections": sections, "Omitted": omitted, "History": recent(q.History), "Question": q.Text,
	})
	if err != nil {
		return Answer{}, fmt.Errorf("chat: %w", err)
	}
	var emitErr error
	resp, err := l.client.Stream(ctx, llm.TextRequest{System: system, Messages: []llm.Message{{Role: "user", Text: user}}},
		func(d string) error {
			if err := emit(d); err != nil {
				emitErr = err
				return err
			}
			return nil
		})
	switch {
	case emitErr != nil:
		return Answer{}, fmt.Errorf("chat: emit: %w", emitErr)
	case ctx.Err() != nil:
		return Answer{}, fmt.Errorf("chat: %w", ctx.Err())
	case strings.TrimSpace(resp.Text) == "":
		// Nothing written (an error, or an empty answer): the reviewer
		// still gets the passages.
		l.log.Warn("chat: LLM unavailable, answering by retrieval", "provider", l.client.Name(), "model", l.client.Model(),
			"document", q.Document, "err", err)
		m := textsFor(lang)
		// Provider stays "rules": it wrote the answer, whose text says
		// that the model was unavailable.
		return l.fallback.answer(ctx, q, lang, m.unavailable, m.noMatchLLM, emit)
	}
	text := resp.Text
	if err != nil {
		// The model stopped mid-answer: keep what it wrote, and say so.
		l.log.Warn("chat: LLM answer interrupted", "provider", l.client.Name(), "document", q.Document, "err", err)
		note := "\n\n" + textsFor(lang).interrupted
		if eerr := emit(note); eerr != nil {
			return Answer{}, fmt.Errorf("chat: emit: %w", eerr)
		}
		text += note
	}
	cites, text := citations(text, q.Sections)
	return Answer{Text: text, Citations: cites, Grounding: GroundingLLM, Provider: l.client.Name(), Model: l.client.Model()}, nil
}

// promptSections returns the sections to show the model, in document
// order, and how many were left out to stay within maxPromptBytes.
func (l *LLM) promptSections(q Question, lang string) ([]promptSection, int) {
	total := 0
	for _, s := range q.Sections {
		total += len(s.Text) + len(s.Title)
	}
	keep := make([]bool, len(q.Sections))
	if total <= maxPromptBytes {
		for i := range keep {
			keep[i] = true
		}
	} else {
		// Most related first, then the document's order; the first
		// section (who writes, about what) is always worth its place.
		order := l.fallback.sectionRelevance(q, lang)
		budget := maxPromptBytes
		for _, i := range order {
			if n := len(q.Sections[i].Text) + len(q.Sections[i].Title); n <= budget {
				keep[i] = true
				budget -= n
			}
		}
	}
	var out []promptSection
	omitted := 0
	for i, s := range q.Sections {
		if !keep[i] {
			omitted++
			continue
		}
		ps := promptSection{Index: s.Index, Title: s.Title, Text: s.Text}
		switch {
		case s.PageStart > 0 && s.PageEnd > s.PageStart:
			ps.Pages = fmt.Sprintf("pages %d-%d", s.PageStart, s.PageEnd)
		case s.PageStart > 0:
			ps.Pages = fmt.Sprintf("page %d", s.PageStart)
		}
		out = append(out, ps)
	}
	return out, omitted
}

// recent returns the last maxHistory turns, each at most maxTurnBytes.
func recent(history []Turn) []Turn {
	history = history[max(0, len(history)-maxHistory):]
	out := make([]Turn, len(history))
	for i, t := range history {
		if len(t.Text) > maxTurnBytes {
			cut := maxTurnBytes
			for cut > 0 && !utf8.RuneStart(t.Text[cut]) {
				cut--
			}
			t.Text = t.Text[:cut] + "…"
		}
		out[i] = t
	}
	return out
}

// sortByScore orders section positions by score, highest first, then by
// position.
func sortByScore(score []float64) []int {
	order := make([]int, len(score))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return score[order[a]] > score[order[b]] })
	return order
}
