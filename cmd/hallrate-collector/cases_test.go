package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The order docs/collector.md writes, flags after the file, works; a
// usage error names the problem in its first line.
func TestCasesImportFlagsAfterFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "collector.toml")
	if err := os.WriteFile(conf, []byte("[store]\ndsn = \"sqlite://"+filepath.Join(dir, "c.db")+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "cases.csv")
	if err := os.WriteFile(csv, []byte("projectNo,hall,counter,ticket,acceptedAt\n620100-2026-000001,h1,W01,A001,2026-11-24T09:02:00+08:00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), []string{"cases", "import", csv, "--config", conf}, stdio{Out: &out, Err: &errb}); err != nil {
		t.Fatalf("cases import FILE --config PATH: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "imported 1 cases") {
		t.Errorf("output %q", out.String())
	}
	for _, tc := range []struct {
		args  []string
		first string
	}{
		{[]string{"cases"}, `hallrate-collector cases: missing "import FILE.csv"`},
		{[]string{"cases", "import", "--config", conf}, "hallrate-collector cases: import: missing the CSV file"},
		{[]string{"cases", "export", csv}, `hallrate-collector cases: unknown subcommand "export" (only "import")`},
	} {
		errb.Reset()
		err := dispatch(context.Background(), tc.args, stdio{Out: &out, Err: &errb})
		first, _, _ := strings.Cut(errb.String(), "\n")
		if !errors.Is(err, errUsage) || first != tc.first {
			t.Errorf("%q: err %v, first line %q; want usage error %q", tc.args, err, first, tc.first)
		}
	}
}
