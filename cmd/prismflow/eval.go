package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"prismflow/schemas/events"
	"prismflow/stages/classify"
)

func evalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval [--json] DIR",
		Short: "Measure classification and field extraction on a labelled folder",
		Long: `eval runs the pipeline's extract, split and classify stages (their own
handlers, in process, without Kafka) on every item folder of DIR (the
insurance-dev layout: message.eml, attachments, truth.json) and prints the
classification accuracy, per-category precision and recall, and the
exact-match rate of each field.

Every document is scored: the e-mail and each attachment on its own, all
against the item's category (a request is the same request whether it
arrives as an e-mail or as its attachment alone). Fields are scored per
item, over the union of its documents' fields with the e-mail's value
first, as a broker reads a request; only fields the truth file lists are
scored. classify.taxonomy, classify.model and the extract settings come
from the configuration, as for "prismflow run".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, _ := cmd.Flags().GetBool("json")
			minAcc, _ := cmd.Flags().GetFloat64("min-accuracy")
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl, err := classify.Open(c.Classify.Taxonomy, c.Classify.Model, c.Classify.ReviewThreshold)
			if err != nil {
				return err
			}
			tmp, err := os.MkdirTemp("", "prismflow-eval-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			rd, err := newItemReader(ctx, c, tmp, newLogger(c))
			if err != nil {
				return err
			}
			dirs, err := itemDirs(args[0])
			if err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			if len(dirs) == 0 {
				return fmt.Errorf("eval: no item folders (with truth.json) in %s", args[0])
			}
			var sc scorer
			for _, d := range dirs {
				it, err := rd.read(ctx, d)
				if err != nil {
					return err
				}
				var outs []events.DocumentClassified
				for _, doc := range it.Docs {
					out, err := cl.Handle(ctx, doc)
					if err != nil {
						return fmt.Errorf("eval: classify %s: %w", doc.Document.ID, err)
					}
					outs = append(outs, out)
				}
				sc.add(it, outs)
			}
			rep := sc.report()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				sc.print(cmd.OutOrStdout(), rep)
			}
			if rep.Accuracy < minAcc {
				return fmt.Errorf("eval: accuracy %.3f below the required %.3f", rep.Accuracy, minAcc)
			}
			return nil
		},
	}
	cmd.Flags().Bool("json", false, `print one JSON object {"documents","accuracy","per_category","field_exact_match"}`)
	cmd.Flags().Float64("min-accuracy", 0, "exit non-zero when accuracy is below this (0..1)")
	return cmd
}

// evalReport is the --json output.
type evalReport struct {
	Documents       int                      `json:"documents"`
	Accuracy        float64                  `json:"accuracy"`
	PerCategory     map[string]categoryScore `json:"per_category"`
	FieldExactMatch map[string]float64       `json:"field_exact_match"` // "overall" and one per field
}

type categoryScore struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	Support   int     `json:"support"` // documents of this category
}

// scorer tallies documents and fields; errors keeps the misses for the
// text report.
type scorer struct {
	docs, correct     int
	truth, predicted  map[string]int
	hits              map[string]int // correct, by category
	fieldN, fieldHit  map[string]int
	errors, fieldMiss []string
	skipped           []string
}

func (s *scorer) add(it labelledItem, outs []events.DocumentClassified) {
	if s.truth == nil {
		s.truth, s.predicted, s.hits, s.fieldN, s.fieldHit = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	}
	for _, sk := range it.Skipped {
		s.skipped = append(s.skipped, it.ID+": "+sk)
	}
	got := map[string]string{}
	for _, out := range outs {
		s.docs++
		s.truth[it.Category]++
		s.predicted[out.Category]++
		if out.Category == it.Category {
			s.correct++
			s.hits[it.Category]++
		} else {
			s.errors = append(s.errors, fmt.Sprintf("%s: %s (%.2f), want %s", out.Document.ID, out.Category, out.Confidence, it.Category))
		}
		for _, f := range out.Fields {
			if _, ok := got[f.Name]; !ok {
				got[f.Name] = f.Value
			}
		}
	}
	for name, want := range it.Fields {
		s.fieldN[name]++
		if got[name] == want {
			s.fieldHit[name]++
		} else {
			s.fieldMiss = append(s.fieldMiss, fmt.Sprintf("%s %s: %q, want %q", it.ID, name, got[name], want))
		}
	}
}

func (s *scorer) report() evalReport {
	r := evalReport{Documents: s.docs, PerCategory: map[string]categoryScore{}, FieldExactMatch: map[string]float64{}}
	r.Accuracy = ratio(s.correct, s.docs)
	cats := map[string]bool{}
	for c := range s.truth {
		cats[c] = true
	}
	for c := range s.predicted {
		cats[c] = true
	}
	for c := range cats {
		r.PerCategory[c] = categoryScore{Precision: ratio(s.hits[c], s.predicted[c]), Recall: ratio(s.hits[c], s.truth[c]), Support: s.truth[c]}
	}
	var n, hit int
	for f, total := range s.fieldN {
		r.FieldExactMatch[f] = ratio(s.fieldHit[f], total)
		n += total
		hit += s.fieldHit[f]
	}
	r.FieldExactMatch["overall"] = ratio(hit, n)
	return r
}

func (s *scorer) print(w io.Writer, r evalReport) {
	fmt.Fprintf(w, "documents %d, accuracy %.3f (%d correct)\n\n", r.Documents, r.Accuracy, s.correct)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "category\tprecision\trecall\tdocuments")
	for _, c := range sortedKeys(r.PerCategory) {
		p := r.PerCategory[c]
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%d\n", c, p.Precision, p.Recall, p.Support)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "field\texact match\titems")
	for _, f := range sortedKeys(s.fieldN) {
		fmt.Fprintf(tw, "%s\t%.3f\t%d/%d\n", f, r.FieldExactMatch[f], s.fieldHit[f], s.fieldN[f])
	}
	fmt.Fprintf(tw, "overall\t%.3f\t\n", r.FieldExactMatch["overall"])
	tw.Flush()
	for _, group := range []struct {
		title string
		lines []string
	}{{"misclassified", s.errors}, {"field misses", s.fieldMiss}, {"documents the pipeline refuses", s.skipped}} {
		if len(group.lines) > 0 {
			fmt.Fprintf(w, "\n%s:\n", group.title)
			slices.Sort(group.lines)
			for _, l := range group.lines {
				fmt.Fprintln(w, "  "+l)
			}
		}
	}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
