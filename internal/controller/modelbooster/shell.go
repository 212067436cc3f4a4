package modelbooster

import (
	"strconv"
	"strings"
)

// shellJoin quotes each argument for sh -c, so JSON values (such as
// --kv-transfer-config) reach the engine as written.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@%+") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
