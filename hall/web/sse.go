package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hallrate/hallrate/hall/live"
)

// update is one message of the event stream: sections of the live view
// rendered again, by element id, and the counters that changed.
type update struct {
	Sections map[string]string `json:"sections"`
	Changed  []string          `json:"changed"`
}

// heartbeat keeps proxies and the browser from closing an idle stream.
const heartbeat = 20 * time.Second

// events streams the live view's changes as Server-Sent Events. On
// connecting (and so on every reconnection) it sends every section; then,
// after each burst of events, the sections they touch. A screen that was
// disconnected is therefore whole again as soon as it is back.
func (d *dashboard) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		d.s.fail(w, http.StatusInternalServerError, "streaming not supported")
		return
	}
	lang := langOf(r)
	events, cancel := d.hub.Subscribe(256)
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	all := map[string]bool{"tiles": true, "charts": true, "followups": true, "audit": true}
	if !d.send(w, r, lang, all, nil) {
		return
	}
	fl.Flush()
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	var (
		gather  <-chan time.Time
		timer   *time.Timer
		dirty   = map[string]bool{}
		changed []string
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.done:
			return
		case e := <-events:
			if e.Hall != d.s.cfg.Hall {
				continue
			}
			dirty["tiles"] = true
			if e.Kind == live.Rating || e.Kind == live.Status {
				dirty["audit"] = true
			}
			if e.Kind == live.Rating {
				dirty["charts"] = true
			}
			if e.Bad {
				dirty["followups"] = true
			}
			if !slices.Contains(changed, e.Counter) {
				changed = append(changed, e.Counter)
			}
			if gather == nil {
				timer = time.NewTimer(d.gather)
				gather = timer.C
			}
		case <-gather:
			gather = nil
			if !d.send(w, r, lang, dirty, changed) {
				return
			}
			fl.Flush()
			dirty, changed = map[string]bool{}, nil
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// send renders the sections and writes them as one "update" event. It
// returns false when the stream is over.
func (d *dashboard) send(w http.ResponseWriter, r *http.Request, lang string, sections map[string]bool, changed []string) bool {
	v, err := d.view(r.Context(), lang)
	if err != nil {
		if r.Context().Err() == nil {
			d.s.log.Warn("dashboard: event stream: read the hall", "err", err)
		}
		return r.Context().Err() == nil
	}
	u := update{Sections: map[string]string{}, Changed: changed}
	if u.Changed == nil {
		u.Changed = []string{}
	}
	for name := range sections {
		var b bytes.Buffer
		if err := d.tmpl.ExecuteTemplate(&b, name, v); err != nil {
			d.s.log.Error("dashboard: render", "section", name, "err", err)
			continue
		}
		u.Sections[name] = b.String()
	}
	data, err := json.Marshal(u)
	if err != nil {
		d.s.log.Error("dashboard: encode update", "err", err)
		return true
	}
	_, err = fmt.Fprintf(w, "event: update\ndata: %s\n\n", data)
	return err == nil
}
