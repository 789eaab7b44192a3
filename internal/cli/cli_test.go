package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestParseArgsFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantConfig string
		wantRest   []string
	}{
		{[]string{"import", "cases.csv", "--config", "c.toml"}, "c.toml", []string{"import", "cases.csv"}},
		{[]string{"--config", "c.toml", "import", "cases.csv"}, "c.toml", []string{"import", "cases.csv"}},
		{[]string{"import", "-config=c.toml", "cases.csv"}, "c.toml", []string{"import", "cases.csv"}},
		{[]string{"import", "--", "-odd-name.csv"}, "", []string{"import", "-odd-name.csv"}},
		{nil, "", nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg := fs.String("config", "", "")
		rest, err := ParseArgs(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if *cfg != tc.wantConfig || !slices.Equal(rest, tc.wantRest) {
			t.Errorf("%q: config %q rest %q, want %q %q", tc.args, *cfg, rest, tc.wantConfig, tc.wantRest)
		}
	}
}

func TestUsageErrorsSayWhatWasWrongFirst(t *testing.T) {
	p := Program{Name: "prog", Commands: []Command{{Name: "run", Summary: "run it"}}}
	for _, tc := range []struct {
		args  []string
		first string
	}{
		{[]string{"extra"}, `prog run: unexpected argument "extra"`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
	} {
		var errb bytes.Buffer
		fs := p.Flags("run", "Run it.", IO{Err: &errb})
		err := Parse(fs, tc.args)
		if !errors.Is(err, ErrUsage) {
			t.Fatalf("%q: %v, want ErrUsage", tc.args, err)
		}
		first, _, _ := strings.Cut(errb.String(), "\n")
		if first != tc.first {
			t.Errorf("%q: first line %q, want %q", tc.args, first, tc.first)
		}
		if !strings.Contains(errb.String(), "usage: prog run [flags]") {
			t.Errorf("%q: no usage after the error:\n%s", tc.args, errb.String())
		}
	}
}

func TestHelpListsCommands(t *testing.T) {
	ran := ""
	p := Program{Name: "prog", Commands: []Command{
		{Name: "run", Summary: "run it", Run: func(_ context.Context, args []string, _ IO) error { ran = "run " + strings.Join(args, " "); return nil }},
		{Name: "version", Summary: "print the version", Run: func(context.Context, []string, IO) error { return nil }},
	}}
	for _, arg := range []string{"-h", "-help", "--help"} {
		var errb bytes.Buffer
		err := p.Dispatch(context.Background(), []string{arg}, IO{Out: &bytes.Buffer{}, Err: &errb})
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: %v, want flag.ErrHelp", arg, err)
		}
		for _, want := range []string{"commands:", "run        run it (the default)", "version    print the version"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("%s: %q missing from\n%s", arg, want, errb.String())
			}
		}
	}
	if ran != "" {
		t.Errorf("-h ran the default command: %q", ran)
	}
	// A flag other than -h still goes to the default command.
	if err := p.Dispatch(context.Background(), []string{"--config", "x"}, IO{Err: &bytes.Buffer{}}); err != nil || ran != "run --config x" {
		t.Errorf("default command: err %v, ran %q", err, ran)
	}
}
