package classify

import "testing"

// BenchmarkTrain measures what the built-in model costs at start: the
// final fit plus the calibration folds over the embedded examples.
func BenchmarkTrain(b *testing.B) {
	ex, err := BuiltinExamples()
	if err != nil {
		b.Fatal(err)
	}
	tf, err := DefaultTaxonomy()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Train(ex, tf.Ordered(), TrainOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredict is the per-document cost in the stage.
func BenchmarkPredict(b *testing.B) {
	m, err := BuiltinModel()
	if err != nil {
		b.Fatal(err)
	}
	ex, _ := BuiltinExamples()
	for b.Loop() {
		for _, e := range ex[:20] {
			m.Predict(e.Text)
		}
	}
}
