-- The Prefect server keeps its own database beside newswatch's.
CREATE DATABASE prefect OWNER newswatch;
