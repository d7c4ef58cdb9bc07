package cli

import "github.com/spf13/cobra"

func newStatusCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "status", Short: "(under construction)", Hidden: true}
}
