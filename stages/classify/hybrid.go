package classify

import (
	"fmt"
	"slices"
)

// hybridModel is what the stage runs by default: the trained model for
// the categories it has examples of, and the taxonomy's keyword cues for
// the categories it has none of (a broker's new category before anyone
// has labelled mail for it). The keyword model decides how much
// probability goes to those categories; the trained model shares the rest
// among its own, so the scores still sum to 1.
type hybridModel struct {
	trained    *TrainedModel
	keywords   *KeywordModel
	categories []string // the taxonomy
	untrained  []string // taxonomy categories the trained model does not know
}

func newHybrid(trained *TrainedModel, keywords *KeywordModel, taxonomy []string) *hybridModel {
	h := &hybridModel{trained: trained, keywords: keywords, categories: taxonomy}
	for _, c := range taxonomy {
		if !slices.Contains(trained.categories, c) {
			h.untrained = append(h.untrained, c)
		}
	}
	return h
}

// Name is reported as the classification provider.
func (h *hybridModel) Name() string {
	if len(h.untrained) == 0 {
		return h.trained.Name()
	}
	return h.trained.Name() + "+keywords"
}

// Predict implements Model.
func (h *hybridModel) Predict(text string) (string, float64, map[string]float64) {
	cat, conf, scores := h.trained.Predict(text)
	if len(h.untrained) == 0 {
		return cat, conf, scores
	}
	_, _, kw := h.keywords.Predict(text)
	var rest float64
	for _, u := range h.untrained {
		rest += kw[u]
	}
	out := make(map[string]float64, len(scores)+len(h.untrained))
	for c, p := range scores {
		out[c] = p * (1 - rest)
	}
	for _, u := range h.untrained {
		out[u] = kw[u]
	}
	best, bestP := "", -1.0
	for _, c := range append(slices.Clone(h.trained.categories), h.untrained...) {
		if out[c] > bestP {
			best, bestP = c, out[c]
		}
	}
	return best, bestP, out
}

// modelFor returns the model the stage runs over a taxonomy: trained
// (nil: the built-in one) with keyword fallback for the categories it has
// no examples of. A category the trained model knows but the taxonomy
// lacks is left to Handle, which files such a document under the
// fallback and flags it for review: the broker should see what their
// taxonomy has no place for, rather than have it silently guessed.
func modelFor(trained *TrainedModel, km *KeywordModel, taxonomy []string) (Model, error) {
	if trained == nil {
		b, err := BuiltinModel()
		if err != nil {
			return nil, fmt.Errorf("built-in model: %w", err)
		}
		trained = b
	}
	return newHybrid(trained, km, taxonomy), nil
}
