from effscale.cli import main

main()
