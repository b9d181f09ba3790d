"""Pure operations on the annotation model: conversion policies, checks, splits, statistics. No printing."""
