from attune_cli.cli.app import main

main()
