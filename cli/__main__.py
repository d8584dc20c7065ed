from ckdsnn_events.cli.main import main

main()
