package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"
)

func uploadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upload FILE|FOLDER|GLOB...",
		Short: "Upload documents to the pipeline and print their ids",
		Long: `Upload files to the pipeline: files, folders (every file below them) and
glob patterns. Uploads run concurrently; on a terminal a progress bar shows
the bytes sent. With --wait the command waits until each document is done
or failed: one document is printed whole, several as a table.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			files, err := expandPaths(args)
			if err != nil {
				return err
			}
			wait, _ := cmd.Flags().GetBool("wait")
			asJSON, _ := cmd.Flags().GetBool("json")
			timeout, _ := cmd.Flags().GetDuration("timeout")
			password, _ := cmd.Flags().GetString("password")
			workers, _ := cmd.Flags().GetInt("concurrency")
			return runUploads(cmd, c, files, uploadOptions{wait: wait, asJSON: asJSON, timeout: timeout, password: password, workers: workers})
		},
	}
	addAPIFlag(cmd)
	cmd.Flags().Bool("wait", false, "wait until each document is done or failed and print the result")
	cmd.Flags().Bool("json", false, "print JSON")
	cmd.Flags().Duration("timeout", 5*time.Minute, "how long --wait waits per document")
	cmd.Flags().String("password", "", "password that opens the encrypted PDFs among the files")
	cmd.Flags().IntP("concurrency", "j", 4, "files uploaded at once")
	return cmd
}

// expandPaths turns arguments into files: a folder gives every regular
// file below it (hidden ones skipped), a pattern the files it matches.
func expandPaths(args []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	for _, arg := range args {
		matches := []string{arg}
		if strings.ContainsAny(arg, "*?[") {
			m, err := filepath.Glob(arg)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", arg, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("pattern %q matches no file", arg)
			}
			matches = m
		}
		for _, m := range matches {
			fi, err := os.Stat(m)
			if err != nil {
				return nil, err
			}
			if !fi.IsDir() {
				add(m)
				continue
			}
			err = filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if strings.HasPrefix(d.Name(), ".") && p != m {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				if d.Type().IsRegular() {
					add(p)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

type uploadOptions struct {
	wait, asJSON bool
	timeout      time.Duration
	password     string
	workers      int
}

// uploadOutcome is what happened to one file.
type uploadOutcome struct {
	path string
	res  uploadResult
	raw  json.RawMessage
	doc  docSummary
	err  error
}

func runUploads(cmd *cobra.Command, c *apiClient, files []string, o uploadOptions) error {
	ctx := cmd.Context()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var total int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			total += fi.Size()
		}
	}
	// A progress bar only where a person watches, and only for more
	// than one file: pipes and logs get plain lines.
	var bar *progressbar.ProgressBar
	if f, ok := errOut.(*os.File); ok && term.IsTerminal(int(f.Fd())) && len(files) > 1 {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(errOut), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(fmt.Sprintf("uploading %d files", len(files))),
			progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
	}
	c.progress = func(n int) {
		if bar != nil {
			_ = bar.Add(n)
		}
	}

	outcomes := make([]uploadOutcome, len(files))
	var mu sync.Mutex // serialises printing
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.workers, 1))
	for i, path := range files {
		g.Go(func() error {
			oc := uploadOutcome{path: path}
			oc.res, oc.err = c.upload(gctx, path, o.password)
			if oc.err == nil && o.wait {
				wctx, cancel := context.WithTimeout(gctx, o.timeout)
				oc.raw, oc.doc, oc.err = c.wait(wctx, oc.res.ID)
				cancel()
			}
			outcomes[i] = oc
			if !o.wait {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case oc.err != nil:
					if bar != nil {
						_ = bar.Clear()
					}
					fmt.Fprintln(errOut, oc.err)
				case o.asJSON:
					_ = json.NewEncoder(out).Encode(oc.res)
				default:
					if bar != nil {
						_ = bar.Clear()
					}
					fmt.Fprintf(out, "%s\t%s\n", oc.res.ID, oc.res.Filename)
				}
			}
			return nil // one file's failure does not stop the others
		})
	}
	_ = g.Wait()
	if bar != nil {
		_ = bar.Finish()
	}

	var failed error
	for _, oc := range outcomes {
		switch {
		case oc.err != nil:
			failed = errors.Join(failed, oc.err)
		case o.wait && oc.doc.Status == "failed":
			failed = errors.Join(failed, fmt.Errorf("%s failed: %s", oc.path, oc.doc.Error))
		}
	}
	if !o.wait {
		return failed
	}
	switch {
	case o.asJSON:
		for _, oc := range outcomes {
			if oc.err == nil {
				fmt.Fprintln(out, string(oc.raw))
			}
		}
	case len(outcomes) == 1 && outcomes[0].err == nil:
		printDocument(out, outcomes[0].doc)
	default:
		printResultTable(out, outcomes)
	}
	return failed
}

func printResultTable(w io.Writer, outcomes []uploadOutcome) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tDOCUMENT\tSTATUS\tPAGES\tCATEGORY\tCONFIDENCE\tERROR")
	for _, oc := range outcomes {
		if oc.err != nil {
			fmt.Fprintf(tw, "%s\t-\tnot uploaded\t\t\t\t%v\n", oc.path, oc.err)
			continue
		}
		d := oc.doc
		conf := ""
		if d.Category != "" {
			conf = fmt.Sprintf("%.0f%%", d.Confidence*100)
			if d.NeedsReview {
				conf += " (review)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", oc.path, d.ID, d.Status, d.PageCount, d.Category, conf, d.Error)
	}
	tw.Flush()
}
