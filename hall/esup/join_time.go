package esup

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hallrate/hallrate/hall/store"
)

// ErrNotCandidate is an assignment to a case that is not among the
// rating's candidates.
var ErrNotCandidate = errors.New("not a candidate case of the rating")

// timePass joins by counter and time the ratings that cannot join by
// ticket: those of the staff key, and those whose match window ended
// without a case of their ticket (staleMS). It returns the evaluations
// made.
func (j *Joiner) timePass(ctx context.Context, staleMS int64) ([]store.Evaluation, error) {
	var all []store.Evaluation
	for range maxBatches {
		var made []store.Evaluation
		n := 0
		err := j.cfg.Store.Join(ctx, func(tx *store.JoinTx) error {
			made = made[:0]
			ws, err := tx.TimeJoinable(joinBatch, staleMS)
			if err != nil {
				return err
			}
			n = len(ws)
			for _, w := range ws {
				e, err := j.joinByTime(tx, w, w.StoredMS < staleMS)
				if err != nil {
					return err
				}
				if e != nil {
					made = append(made, *e)
				}
			}
			return nil
		})
		if err != nil {
			return all, fmt.Errorf("esup: join by time: %w", err)
		}
		all = append(all, made...)
		if n < joinBatch {
			break
		}
	}
	return all, nil
}

// joinByTime joins one rating with the one case of its counter whose span
// holds its time, marks it ambiguous between several, and otherwise lets it
// wait for a newer case, or, once stale, marks it unmatched with the
// reason.
func (j *Joiner) joinByTime(tx *store.JoinTx, w store.TimeRating, stale bool) (*store.Evaluation, error) {
	mark, err := tx.LastCaseID(w.Hall, w.Counter)
	if err != nil {
		return nil, err
	}
	at := w.PressedMS
	if !w.ClockSynced {
		off, ok, err := tx.BootOffset(w.Device, w.BootID)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Its time cannot be trusted: it waits for a synchronised
			// record of the same boot, and never joins by time before.
			if stale {
				j.unmatched.Add(1)
				return nil, tx.MarkUnmatched(w.ID, store.ReasonClockUnsynced)
			}
			return nil, tx.Examined(w.ID, mark)
		}
		at = off + w.UptimeMS
	}
	cs, err := tx.CasesAt(w.Hall, w.Counter, at, j.cfg.MatchWindow.Milliseconds(), w.Staff)
	if err != nil {
		return nil, err
	}
	switch {
	case len(cs) == 1:
		wr := w.WaitingRating
		wr.PressedMS = at
		return j.add(tx, wr, cs[0])
	case len(cs) > 1:
		nos := make([]string, len(cs))
		for i, c := range cs {
			nos[i] = c.ProjectNo
		}
		j.log.Info("rating ambiguous: several cases of its counter hold its time; to be assigned",
			"rating", w.ID, "counter", w.Counter, "candidates", nos)
		return nil, tx.MarkAmbiguous(w.ID, nos)
	case stale:
		j.unmatched.Add(1)
		return nil, tx.MarkUnmatched(w.ID, store.ReasonNoCase)
	}
	return nil, tx.Examined(w.ID, mark)
}

// add makes the evaluation of a rating joined with c.
func (j *Joiner) add(tx *store.JoinTx, w store.WaitingRating, c store.Case) (*store.Evaluation, error) {
	e, err := j.evaluation(w, c)
	if err != nil {
		return nil, err
	}
	added, err := tx.AddEvaluation(e)
	if err != nil {
		return nil, err
	}
	if !added {
		j.duplicates.Add(1)
		j.log.Warn("second counted rating of a case: kept, flagged duplicate_case", "rating", w.ID, "projectNo", c.ProjectNo)
		return nil, nil
	}
	j.joined.Add(1)
	return &e, nil
}

// Assign joins an ambiguous rating with one of its candidate cases, as the
// duty manager decided, and records who did it and when. It returns
// store.ErrNotFound for an unknown rating, store.ErrWrongState for one that
// is not ambiguous or a case that has its evaluation already, and
// [ErrNotCandidate].
func (j *Joiner) Assign(ctx context.Context, ratingID, projectNo, by string) (store.Evaluation, error) {
	var made store.Evaluation
	err := j.cfg.Store.Join(ctx, func(tx *store.JoinTx) error {
		w, cands, err := tx.AmbiguousRating(ratingID)
		if err != nil {
			return err
		}
		if !slices.Contains(cands, projectNo) {
			return fmt.Errorf("case %s: %w %s (candidates %v)", projectNo, ErrNotCandidate, ratingID, cands)
		}
		c, ok, err := tx.CaseByNo(projectNo)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("case %s: %w", projectNo, store.ErrNotFound)
		}
		e, err := j.evaluation(w, c)
		if err != nil {
			return err
		}
		added, err := tx.AddEvaluation(e)
		if err != nil {
			return err
		}
		if !added {
			// Rolled back: the rating stays ambiguous.
			return fmt.Errorf("case %s has its evaluation already: %w", projectNo, store.ErrWrongState)
		}
		made = e
		return tx.NoteAssignment(ratingID, by, j.cfg.Clock.Now().UnixMilli())
	})
	if err != nil {
		return store.Evaluation{}, fmt.Errorf("esup: assign %s: %w", ratingID, err)
	}
	j.joined.Add(1)
	j.log.Info("ambiguous rating assigned", "rating", ratingID, "projectNo", projectNo, "by", by)
	j.cfg.OnEvaluation(made)
	return made, nil
}
