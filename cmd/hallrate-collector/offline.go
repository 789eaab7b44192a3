package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/hall/esup"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/web"
	"github.com/hallrate/hallrate/internal/cli"
)

// openStore loads the configuration and opens its store, for the commands
// that work on the store next to a running collector.
func openStore(ctx context.Context, path string, explicit bool, dsn string) (config.Config, *store.DB, *time.Location, error) {
	cfg, err := config.Load(path, !explicit)
	if err != nil {
		return cfg, nil, nil, err
	}
	if dsn != "" {
		cfg.Store.DSN = dsn
		if err := cfg.Validate(); err != nil {
			return cfg, nil, nil, err
		}
	}
	loc, err := time.LoadLocation(cfg.Hall.Timezone)
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("config: hall.timezone: %w", err)
	}
	db, err := store.Open(ctx, cfg.Store.DSN, nil)
	if err != nil {
		return cfg, nil, nil, err
	}
	return cfg, db, loc, nil
}

func cmdCases(ctx context.Context, args []string, io cli.IO) error {
	fs := program().Flags("cases import FILE.csv", "Add cases (办件) from a CSV file whose header names the case fields\n(projectNo, hall, counter, ticket required; taskCode, taskName, deptCode, deptName,\nstaff, staffName, acceptedAt, finishedAt optional). One bad row changes nothing.\nA case stored already with other content is refused unless -update is given.\nA running collector joins them within seconds.", io)
	path := fs.String("config", config.DefaultPath, "configuration file")
	dsn := fs.String("store", "", "database `DSN` instead of store.dsn")
	encoding := fs.String("encoding", "utf-8", "the file's encoding: utf-8 (with or without BOM) or gbk (read as GB 18030)")
	update := fs.Bool("update", false, "change cases stored with other content, each change recorded with who and when")
	rest, err := cli.ParseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0:
		return cli.Usagef(fs, "missing \"import FILE.csv\"")
	case rest[0] != "import":
		return cli.Usagef(fs, "unknown subcommand %q (only \"import\")", rest[0])
	case len(rest) == 1:
		return cli.Usagef(fs, "import: missing the CSV file")
	case len(rest) > 2:
		return cli.Usagef(fs, "import: one CSV file at a time, got %d", len(rest)-1)
	}
	file := rest[1]
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	_, db, loc, err := openStore(ctx, *path, explicit, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("cases import: %w", err)
	}
	defer f.Close()
	readErr := func(err error) error {
		var fe *esup.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("cases import: %s: line %d: %s: %s (nothing imported)", file, fe.Index, fe.Field, fe.Msg)
		}
		return fmt.Errorf("cases import: %s: %w (nothing imported)", file, err)
	}
	if !*update {
		// Read and stored in one transaction, a case at a time: a bad row
		// rolls everything back, and the file is never held in memory.
		n, err := db.SaveCaseSeq(ctx, func(yield func(store.Case, error) bool) {
			stopped := errors.New("stopped")
			_, err := esup.EachCSVCase(f, *encoding, loc, time.Now(), func(c store.Case) error {
				if !yield(c, nil) {
					return stopped
				}
				return nil
			})
			if err != nil && !errors.Is(err, stopped) {
				yield(store.Case{}, err)
			}
		})
		var ce *store.CaseConflictError
		switch {
		case errors.As(err, &ce):
			return fmt.Errorf("cases import: %s: %w (nothing imported; -update changes it)", file, ce)
		case err != nil:
			return readErr(err)
		}
		fmt.Fprintf(io.Out, "imported %d cases\n", n)
		return nil
	}
	cs, err := esup.ReadCasesCSV(f, *encoding, loc, time.Now())
	if err != nil {
		return readErr(err)
	}
	by := "cases import " + file
	if u, err := user.Current(); err == nil {
		by += " by " + u.Username
	}
	changed := 0
	for _, c := range cs {
		err := db.SaveCases(ctx, []store.Case{c})
		if errors.Is(err, store.ErrConflict) {
			_, err = db.UpdateCase(ctx, c, by, time.Now().UnixMilli())
			changed++
		}
		if err != nil {
			return fmt.Errorf("cases import: %s: %w", file, err)
		}
	}
	fmt.Fprintf(io.Out, "imported %d cases, %d of them changed\n", len(cs), changed)
	return nil
}

func cmdReport(ctx context.Context, args []string, io cli.IO) error {
	fs := program().Flags("report", "Print a month's satisfaction report per staff member and per counter, worst first.", io)
	path := fs.String("config", config.DefaultPath, "configuration file")
	dsn := fs.String("store", "", "database `DSN` instead of store.dsn")
	month := fs.String("month", "", "the month, `YYYY-MM` (default: this month, hall time)")
	format := fs.String("format", "csv", "csv or json")
	reasons := fs.Bool("reasons", false, "with -format csv: the reasons given for 差评 (不满意原因分布), one line per staff member, counter or total and reason")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *format != "csv" && *format != "json" {
		fmt.Fprintf(io.Err, "-format: %q is not csv or json\n", *format)
		return cli.ErrUsage
	}
	if *reasons && *format != "csv" {
		fmt.Fprintln(io.Err, "-reasons: only with -format csv (the JSON form holds the reasons already)")
		return cli.ErrUsage
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, db, loc, err := openStore(ctx, *path, explicit, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if *month == "" {
		*month = time.Now().In(loc).Format("2006-01")
	}
	rep, err := web.Report(ctx, db, *month, cfg.Hall.ID, loc, [5]float64(cfg.Report.Points))
	if err != nil {
		return err
	}
	switch {
	case *format == "json":
		return rep.WriteJSON(io.Out)
	case *reasons:
		return rep.WriteReasonsCSV(io.Out)
	}
	return rep.WriteCSV(io.Out)
}
