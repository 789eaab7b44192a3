package ingest

import (
	"fmt"
	"strings"

	"github.com/hallrate/hallrate/record"
)

// Topic is a counter topic taken apart: {prefix}/{hall}/{counter}/{kind}.
type Topic struct {
	Hall, Counter, Kind string
}

// ParseTopic takes apart a counter topic under prefix.
func ParseTopic(prefix, topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return Topic{}, fmt.Errorf("topic %q: not under %q", topic, prefix)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Topic{}, fmt.Errorf("topic %q: want {prefix}/{hall}/{counter}/{kind}", topic)
	}
	t := Topic{Hall: parts[0], Counter: parts[1], Kind: parts[2]}
	if !record.ValidID(t.Hall) || !record.ValidID(t.Counter) {
		return Topic{}, fmt.Errorf("topic %q: invalid hall or counter id", topic)
	}
	return t, nil
}
