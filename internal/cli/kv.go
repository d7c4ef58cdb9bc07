package cli

import "github.com/spf13/cobra"

func newKVCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "kv", Short: "(under construction)", Hidden: true}
}
