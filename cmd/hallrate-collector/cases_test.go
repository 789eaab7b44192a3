package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/cli"
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
	if err := program().Dispatch(context.Background(), []string{"cases", "import", csv, "--config", conf}, cli.IO{Out: &out, Err: &errb}); err != nil {
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
		err := program().Dispatch(context.Background(), tc.args, cli.IO{Out: &out, Err: &errb})
		first, _, _ := strings.Cut(errb.String(), "\n")
		if !errors.Is(err, cli.ErrUsage) || first != tc.first {
			t.Errorf("%q: err %v, first line %q; want usage error %q", tc.args, err, first, tc.first)
		}
	}
}

// A GBK file is refused as UTF-8 with its line and read with --encoding
// gbk; importing it again with other content is refused naming the case,
// and --update changes it, recorded with who.
func TestCasesImportEncodingAndUpdate(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "c.db")
	conf := filepath.Join(dir, "collector.toml")
	if err := os.WriteFile(conf, []byte("[store]\ndsn = \""+dsn+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "cases.csv")
	write := func(staffName string) {
		if err := os.WriteFile(csv, []byte("projectNo,hall,counter,ticket,staffName\nP1,h1,W01,A001,"+staffName+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := program().Dispatch(context.Background(), append([]string{"cases", "import", csv, "--config", conf}, args...), cli.IO{Out: &out, Err: &errb})
		return out.String() + errb.String(), err
	}
	write("\xd5\xc5\xc8\xfd") // 张三 in GBK
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "line 2: staffName: not UTF-8") {
		t.Fatalf("GBK read as UTF-8: %v", err)
	}
	if out, err := run("--encoding", "gbk"); err != nil || !strings.Contains(out, "imported 1 cases") {
		t.Fatalf("--encoding gbk: %v %s", err, out)
	}
	write("李四")
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "case P1 ") {
		t.Fatalf("other content without --update: %v", err)
	}
	if out, err := run("--update"); err != nil || !strings.Contains(out, "1 of them changed") {
		t.Fatalf("--update: %v %s", err, out)
	}
	db, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	chs, err := db.CaseChanges(context.Background(), "P1")
	if err != nil || len(chs) != 1 || chs[0].Old.StaffName != "张三" || chs[0].New.StaffName != "李四" || !strings.HasPrefix(chs[0].By, "cases import ") {
		t.Fatalf("changes %+v, %v", chs, err)
	}
}
