package trust

import (
	"fmt"
	"io"
	"strings"
)

// ACL writes the Mosquitto acl_file of a hall whose broker takes each
// client's certificate name as its user (use_identity_as_username): the
// collector reads every topic under prefix and writes tickets, alerts and
// stored acknowledgements; each device of inv writes only its own
// counter's rating and status and reads only its own ticket and stored
// acknowledgement. Devices the file does not name get nothing.
func ACL(w io.Writer, inv *Inventory, prefix, collector string) error {
	var b strings.Builder
	b.WriteString("# Mosquitto ACL made by `hallrate-collector acl` from the device inventory.\n")
	b.WriteString("# Users are certificate names (use_identity_as_username true).\n\n")
	fmt.Fprintf(&b, "user %s\n", collector)
	fmt.Fprintf(&b, "topic read %s/#\n", prefix)
	fmt.Fprintf(&b, "topic write %s/+/+/ticket\n", prefix)
	fmt.Fprintf(&b, "topic write %s/+/alert\n", prefix)
	fmt.Fprintf(&b, "topic write %s/+/+/stored\n", prefix)
	for _, d := range inv.Devices() {
		base := prefix + "/" + d.Hall + "/" + d.Counter
		fmt.Fprintf(&b, "\nuser %s\n", d.ID)
		fmt.Fprintf(&b, "topic write %s/rating\n", base)
		fmt.Fprintf(&b, "topic write %s/status\n", base)
		fmt.Fprintf(&b, "topic read %s/ticket\n", base)
		fmt.Fprintf(&b, "topic read %s/stored\n", base)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("acl: write: %w", err)
	}
	return nil
}
