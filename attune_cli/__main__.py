from attune_cli.cli.entry import main

main()
