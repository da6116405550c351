package topology

import (
	"slices"
	"testing"

	"prismflow/connectors/blob"
	"prismflow/pipeline/config"
	"prismflow/stages/persist"
)

func TestStagesMatchTheDeclaredGraph(t *testing.T) {
	c, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// persist needs a store only to run; building it needs none open.
	stages, err := Stages(Deps{Config: c, Blobs: blobs, Store: &persist.Store{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var built []string
	for _, s := range stages {
		built = append(built, s.Name)
		var topics []string
		for _, r := range s.Routes {
			topics = append(topics, r.Topic)
		}
		if want := Inputs[s.Name]; !slices.Equal(topics, want) {
			t.Errorf("stage %s consumes %v, Inputs says %v", s.Name, topics, want)
		}
		if s.Output != "" && !slices.Contains(Topics, s.Output) {
			t.Errorf("stage %s produces to %s, not a declared topic", s.Name, s.Output)
		}
	}
	names := slices.Clone(Names)
	slices.Sort(built)
	slices.Sort(names)
	if !slices.Equal(built, names) {
		t.Errorf("built stages %v, Names says %v", built, names)
	}
	if _, err := Stages(Deps{Config: c, Blobs: blobs}, []string{"extract", "nonsense"}); err == nil {
		t.Error("an unknown stage name was accepted")
	}
	if none, err := Stages(Deps{Config: c, Blobs: blobs}, []string{NoStage}); err != nil || len(none) != 0 {
		t.Errorf("stages none: %d stages, %v; want none", len(none), err)
	}
	if _, err := Stages(Deps{Config: c, Blobs: blobs}, []string{NoStage, "extract"}); err == nil {
		t.Error("none beside a stage name was accepted")
	}
}
