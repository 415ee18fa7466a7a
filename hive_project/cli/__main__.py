from hive_project.cli import main

main()
