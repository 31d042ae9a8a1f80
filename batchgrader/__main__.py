from batchgrader.cli import main

main()
