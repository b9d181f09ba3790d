from datatools.cli import main

main()
