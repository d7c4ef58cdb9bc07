package cli

import "github.com/spf13/cobra"

func newServeCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "serve", Short: "(under construction)", Hidden: true}
}
