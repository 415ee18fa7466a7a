from hive_project.cli import main

main(prog_name="hive")
