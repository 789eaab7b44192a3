package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/trust"
	"github.com/hallrate/hallrate/internal/cli"
	"github.com/hallrate/hallrate/record"
)

// errFlagged is the answer of verify when something did not verify; the
// report says what.
var errFlagged = fmt.Errorf("verify: records flagged: %w", cli.ErrSilent)

func cmdVerify(ctx context.Context, args []string, io cli.IO) error {
	fs := program().Flags("verify [FILE...]", "Re-verify records offline against the trusted keys file: JSON-lines files of\n"+
		"records (the collector's --out export, or raw records), or with -store every record in the\n"+
		"store, with the devices' last statuses. Prints, per device epoch, the records, how many\n"+
		"verified, and every bad signature, unsigned record, wrong counter, chain break,\n"+
		"conflicting copy, gap and missing record. Exits 1 when anything is flagged, or when any\n"+
		"record could not be verified (no trusted key) unless -allow-unverified.", io)
	path := fs.String("config", config.DefaultPath, "configuration file (for trust.keys_file and store.dsn)")
	keys := fs.String("keys", "", "trusted keys `FILE` instead of trust.keys_file")
	fromStore := fs.Bool("store", false, "verify the records in the store instead of files")
	dsn := fs.String("dsn", "", "database `DSN` instead of store.dsn (with -store)")
	complete := fs.Bool("complete", false, "the files hold whole epochs: seqs missing before the first present are gaps")
	allow := fs.Bool("allow-unverified", false, "do not fail on records of devices without a trusted key")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	files, err := cli.ParseArgs(fs, args)
	if err != nil {
		return err
	}
	if *fromStore && len(files) > 0 {
		return cli.Usagef(fs, "-store and files exclude each other")
	}
	if !*fromStore && len(files) == 0 {
		return cli.Usagef(fs, "name the files to verify, or -store")
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*path, !explicit)
	if err != nil {
		return err
	}
	if *keys == "" {
		*keys = cfg.Trust.KeysFile
	}
	var inv *trust.Inventory
	if *keys != "" {
		if inv, err = trust.LoadInventory(*keys); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(io.Err, "verify: no trusted keys file (-keys or trust.keys_file): no record can be verified")
	}
	a := trust.NewAuditor(inv)
	var ends map[string]trust.End
	if *fromStore {
		if *dsn != "" {
			cfg.Store.DSN = *dsn
		}
		if ends, err = auditStore(ctx, cfg.Store.DSN, a); err != nil {
			return err
		}
	} else {
		a.Complete = *complete
		for _, name := range files {
			if err := auditFile(name, a); err != nil {
				return err
			}
		}
	}
	rep := a.Report(ends)
	if *asJSON {
		err = writeJSON(io.Out, rep)
	} else {
		err = rep.Write(io.Out)
	}
	if err != nil {
		return err
	}
	if rep.Flagged() || (!*allow && rep.Unverified() > 0) {
		return errFlagged
	}
	return nil
}

func auditFile(name string, a *trust.Auditor) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), ingest.MaxLine)
	n := 0
	for sc.Scan() {
		n++
		if len(sc.Bytes()) == 0 {
			continue
		}
		a.AddLine(sc.Bytes(), name+":"+strconv.Itoa(n))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("verify: read %s line %d: %w", name, n+1, err)
	}
	return nil
}

// auditStore adds every stored record, notes which were stored with other
// columns than they arrived with, and returns the devices' last statuses.
func auditStore(ctx context.Context, dsn string, a *trust.Auditor) (map[string]trust.End, error) {
	db, err := store.Open(ctx, dsn, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	a.Complete = true
	au, err := db.Audit(ctx)
	if err != nil {
		return nil, err
	}
	ends := map[string]trust.End{}
	for _, d := range au.Devices {
		if k, err := record.DecodePublicKey(d.PubKey); err == nil {
			a.Announce(d.Device, k)
		}
		if d.Audited {
			ends[d.Device] = trust.End{Epoch: d.Epoch, Delivered: d.LastSeq - d.Pending}
		}
	}
	n := 0
	err = db.EachRecord(ctx, func(r store.StoredRecord) error {
		n++
		p, err := record.DecodePress(r.Raw)
		if err != nil {
			a.AddLine(r.Raw, "stored record "+strconv.Itoa(n))
			return nil
		}
		a.Add(&p)
		var tk record.TicketRef
		if p.Ticket != nil {
			tk = *p.Ticket
		}
		if r.Hall != p.Hall || r.Counter != p.Counter || r.Disposition != string(p.Disposition) || r.Ticket != tk.ID ||
			r.Staff != tk.Staff || r.Item != tk.Item || r.ProjectNo != tk.ProjectNo ||
			r.PressedAt != p.PressedAt || r.Seq != int64(p.Seq) || r.Satisfaction != p.Satisfaction {
			a.MarkAltered(&p)
		}
		return nil
	})
	return ends, err
}
