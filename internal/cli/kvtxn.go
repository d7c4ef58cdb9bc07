package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/wire"
)

// maxTxnInput bounds what kv txn reads: a transaction the members take is far smaller.
const maxTxnInput = 16 << 20

type kvTxnOptions struct {
	JSON bool // --json
}

func newKVTxnCmd(e *env, conn *connectOptions) *cobra.Command {
	var o kvTxnOptions
	cmd := &cobra.Command{
		Use:   "txn [FILE]",
		Short: "apply compares and then/else writes atomically (from FILE or stdin); prints which branch ran",
		Long: `Reads a transaction from FILE, or stdin when FILE is absent or "-": the JSON body of
POST /v1/txn (docs/api.md), or lines:

  revision KEY OP N      compare the key's revision (0: absent); OP is =, !=, < or >
  value KEY OP VALUE     compare the value (the rest of the line); OP is = or !=
  exists KEY             the key exists
  absent KEY             the key does not exist
  then                   the writes below run when every compare holds
  else                   the writes below run otherwise
  put KEY VALUE          set the key (the rest of the line)
  delete KEY             remove the key

Blank lines and lines starting with # are skipped. Prints "then REV" or "else REV", then one
line per write: "put KEY REV", "delete KEY REV" or "delete KEY not-found".`,
		Example: `  printf 'revision acct/a = 41\nrevision acct/b = 42\nthen\nput acct/a 70\nput acct/b 30\n' | mirrorkv kv txn
  mirrorkv kv txn transfer.json --json`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			t, err := readTxn(e, a)
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Txn(e.ctx, t)
			if err != nil {
				return serverError(err)
			}
			return printTxn(e.stdout, res, o.JSON)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the result as the API's JSON")
	return cmd
}

func readTxn(e *env, a []string) (client.Txn, error) {
	in, name := e.stdin, "stdin"
	if len(a) == 1 && a[0] != "-" {
		f, err := os.Open(a[0])
		if err != nil {
			return client.Txn{}, fmt.Errorf("open the transaction: %w", err)
		}
		defer f.Close()
		in, name = f, a[0]
	}
	b, err := io.ReadAll(io.LimitReader(in, maxTxnInput+1))
	if err != nil {
		return client.Txn{}, fmt.Errorf("read the transaction from %s: %w", name, err)
	}
	if len(b) > maxTxnInput {
		return client.Txn{}, usagef("the transaction in %s is larger than %d bytes", name, maxTxnInput)
	}
	t, err := parseTxnInput(b)
	if err != nil {
		return client.Txn{}, usagef("the transaction in %s: %v", name, err)
	}
	return t, nil
}

// parseTxnInput decodes the input of kv txn: JSON when it starts with '{', lines otherwise.
func parseTxnInput(b []byte) (client.Txn, error) {
	var t client.Txn
	if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return t, fmt.Errorf("decode JSON: %w", err)
		}
		return t, nil
	}
	branch := &t.Then
	inCompares := true
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxTxnInput)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "then", "else":
			if rest != "" {
				return t, fmt.Errorf("line %d: %q takes nothing after it", n, word)
			}
			inCompares, branch = false, &t.Then
			if word == "else" {
				branch = &t.Else
			}
		case "put", "delete":
			if inCompares {
				return t, fmt.Errorf("line %d: %s before then or else", n, word)
			}
			op, err := txnLine(word, rest)
			if err != nil {
				return t, fmt.Errorf("line %d: %w", n, err)
			}
			*branch = append(*branch, op)
		default:
			if !inCompares {
				return t, fmt.Errorf("line %d: compare %q after then or else", n, word)
			}
			c, err := compareLine(word, rest)
			if err != nil {
				return t, fmt.Errorf("line %d: %w", n, err)
			}
			t.Compare = append(t.Compare, c)
		}
	}
	return t, sc.Err()
}

func txnLine(word, rest string) (wire.TxnOp, error) {
	key, value, _ := strings.Cut(rest, " ")
	if key == "" {
		return wire.TxnOp{}, fmt.Errorf("%s without a key", word)
	}
	if word == "delete" {
		if value != "" {
			return wire.TxnOp{}, fmt.Errorf("delete %s takes no value", key)
		}
		return client.TxnDelete(key), nil
	}
	return wire.TxnOp{Op: wire.OpPut, Key: key, Value: value}, nil
}

func compareLine(word, rest string) (wire.Compare, error) {
	fields := strings.SplitN(rest, " ", 3)
	switch word {
	case "exists", "absent":
		if len(fields) != 1 || fields[0] == "" {
			return wire.Compare{}, fmt.Errorf("%s takes one key", word)
		}
		return wire.Compare{Key: fields[0], Target: word}, nil
	case "revision":
		if len(fields) != 3 {
			return wire.Compare{}, fmt.Errorf("want revision KEY OP N")
		}
		n, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			return wire.Compare{}, fmt.Errorf("revision %q: %w", fields[2], err)
		}
		return client.CompareRevision(fields[0], fields[1], n), nil
	case "value":
		if len(fields) < 2 {
			return wire.Compare{}, fmt.Errorf("want value KEY OP VALUE")
		}
		c := wire.Compare{Key: fields[0], Target: wire.TargetValue, Op: fields[1]}
		if len(fields) == 3 {
			c.Value = fields[2]
		}
		return c, nil
	}
	return wire.Compare{}, fmt.Errorf("unknown compare %q: want revision, value, exists or absent", word)
}

func printTxn(w io.Writer, res client.TxnResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	branch := "then"
	if !res.Succeeded {
		branch = "else"
	}
	fmt.Fprintln(w, branch, res.Revision)
	for _, r := range res.Results {
		if r.Op == wire.OpDelete && !r.Deleted {
			fmt.Fprintln(w, r.Op, r.Key, "not-found")
			continue
		}
		fmt.Fprintln(w, r.Op, r.Key, r.Revision)
	}
	return nil
}
