package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"prismflow/stages/classify"
	"prismflow/stages/persist"
)

func trainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "train [--data DIR] [--corrections] [--out FILE]",
		Short: "Train the classifier on a folder of labelled documents and write a model file",
		Long: `train reads labelled documents from DIR: item folders in the insurance-dev
layout (message.eml, attachments, truth.json with "category"), whose e-mail
and every attachment are read through the extract and split stages exactly
as the pipeline reads them, and any *.jsonl files of {"category","text"}
lines. The built-in examples are added unless --builtin=false. The model
is written to --out; set classify.model to it to make the classify stage
use it. With --folds N it first reports N-fold cross-validated accuracy
over DIR's documents (the built-in examples always in training).

With --corrections the documents reviewers corrected in the console are
read from the configured PostgreSQL (postgres.dsn; empty: the private one
under data_dir, the running one or started for the command) and added as
labelled documents: their text as the classify stage read it, labelled
with the reviewer's category where one was given, else the pipeline's
(which the reviewer saw and let stand). --tenant limits them to one
tenant. --data may then be left out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, _ := cmd.Flags().GetString("data")
			out, _ := cmd.Flags().GetString("out")
			withBuiltin, _ := cmd.Flags().GetBool("builtin")
			folds, _ := cmd.Flags().GetInt("folds")
			algo, _ := cmd.Flags().GetString("algorithm")
			withCorrections, _ := cmd.Flags().GetBool("corrections")
			tenant, _ := cmd.Flags().GetString("tenant")
			if data == "" && !withCorrections {
				return errors.New("train: --data DIR or --corrections is required")
			}
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var labelled []classify.Example
			if data != "" {
				tmp, err := os.MkdirTemp("", "prismflow-train-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				rd, err := newItemReader(ctx, c, tmp, newLogger(c))
				if err != nil {
					return err
				}
				if labelled, err = readLabelled(cmd, rd, data); err != nil {
					return err
				}
			}
			var corrected []classify.Example
			if withCorrections {
				store, closeStore, err := openCommandStore(ctx, c, newLogger(c))
				if err != nil {
					return fmt.Errorf("train: %w", err)
				}
				corrected, err = correctionExamples(ctx, store, tenant)
				closeStore()
				if err != nil {
					return fmt.Errorf("train: %w", err)
				}
				if len(corrected) == 0 && len(labelled) == 0 {
					return errors.New("train: no corrected documents in the database and no --data")
				}
				labelled = append(labelled, corrected...)
			}
			var builtin []classify.Example
			if withBuiltin {
				if builtin, err = classify.BuiltinExamples(); err != nil {
					return err
				}
			}
			tf, err := taxonomyOf(c.Classify.Taxonomy)
			if err != nil {
				return err
			}
			order := tf.Ordered()
			opts := classify.TrainOptions{Algorithm: classify.Algorithm(algo)}
			w := cmd.OutOrStdout()
			if folds > 1 {
				r, err := classify.CrossValidate(labelled, builtin, order, folds, opts)
				if err != nil {
					return fmt.Errorf("train: cross-validation: %w", err)
				}
				fmt.Fprintf(w, "%d-fold cross-validated accuracy on %d documents: %.3f\n", folds, r.Documents, r.Accuracy())
				for _, e := range r.Errors {
					fmt.Fprintln(w, "  wrong:", e)
				}
			}
			var unknown []string
			for _, e := range labelled {
				if !slices.Contains(order, e.Category) && !slices.Contains(unknown, e.Category) {
					unknown = append(unknown, e.Category)
				}
			}
			if len(unknown) > 0 {
				// Not fatal: the stage files such predictions under the
				// fallback for review, but the broker should know.
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: categories not in the taxonomy: %s\n", strings.Join(unknown, ", "))
			}
			start := time.Now()
			m, err := classify.Train(append(builtin, labelled...), order, opts)
			if err != nil {
				return err
			}
			f, err := os.Create(out)
			if err != nil {
				return fmt.Errorf("train: %w", err)
			}
			if err := m.Save(f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("train: %w", err)
			}
			var from []string
			if data != "" {
				from = append(from, fmt.Sprintf("%d from %s", len(labelled)-len(corrected), data))
			}
			if withCorrections {
				from = append(from, fmt.Sprintf("%d corrected by reviewers", len(corrected)))
			}
			fmt.Fprintf(w, "trained %s on %d documents (%s) in %v: categories %s, temperature %.3f; wrote %s\n",
				m.Name(), len(builtin)+len(labelled), strings.Join(from, ", "), time.Since(start).Round(time.Millisecond),
				strings.Join(m.Categories(), ", "), m.Temperature(), out)
			return nil
		},
	}
	cmd.Flags().String("data", "", "folder of labelled documents (item folders with truth.json, and/or *.jsonl)")
	cmd.Flags().String("out", "classify-model.bin", "model file to write")
	cmd.Flags().Bool("builtin", true, "also train on the built-in examples")
	cmd.Flags().Int("folds", 0, "report N-fold cross-validated accuracy before training (0: skip)")
	cmd.Flags().String("algorithm", string(classify.LogisticRegression), "logreg or cnb (complement naive Bayes)")
	cmd.Flags().Bool("corrections", false, "also train on the documents reviewers corrected, read from the configured PostgreSQL")
	cmd.Flags().String("tenant", "", "with --corrections: only this tenant's documents (empty: all)")
	return cmd
}

// correctionExamples turns the documents reviewers corrected into
// training examples, each its own cross-validation group. A document the
// pipeline never classified and whose category no reviewer gave has no
// label, and one without text nothing to learn from; both are left out.
func correctionExamples(ctx context.Context, store *persist.Store, tenant string) ([]classify.Example, error) {
	docs, err := store.LabelledCorrections(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]classify.Example, 0, len(docs))
	for _, d := range docs {
		if d.Category == "" || strings.TrimSpace(d.Text) == "" {
			continue
		}
		out = append(out, classify.Example{Category: d.Category, Text: d.Text, Group: "correction:" + d.ID})
	}
	return out, nil
}

// readLabelled reads DIR's item folders (DIR itself may be one) and its
// *.jsonl files as examples; an item's documents share its group, so
// cross-validation keeps a request's e-mail and attachments together.
func readLabelled(cmd *cobra.Command, rd *itemReader, dir string) ([]classify.Example, error) {
	dirs := []string{dir}
	if !isItem(dir) {
		var err error
		if dirs, err = itemDirs(dir); err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
	}
	var out []classify.Example
	for _, d := range dirs {
		it, err := rd.read(cmd.Context(), d)
		if err != nil {
			return nil, err
		}
		for _, doc := range it.Docs {
			out = append(out, classify.Example{Category: it.Category, Group: it.ID, Text: classify.DocumentText(doc)})
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	for _, name := range files {
		if filepath.Base(name) == "manifest.jsonl" {
			continue // the insurance-dev index, not examples
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		ex, err := classify.ReadExamples(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for i := range ex {
			if ex[i].Group == "" {
				ex[i].Group = fmt.Sprintf("%s:%d", filepath.Base(name), i+1)
			}
		}
		out = append(out, ex...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("train: no labelled documents in %s", dir)
	}
	return out, nil
}

// taxonomyOf reads the configured taxonomy (empty: the embedded one).
func taxonomyOf(path string) (classify.TaxonomyFile, error) {
	if path == "" {
		return classify.DefaultTaxonomy()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return classify.TaxonomyFile{}, fmt.Errorf("read taxonomy: %w", err)
	}
	return classify.ParseTaxonomy(b)
}
