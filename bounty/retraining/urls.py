"""URLs of the model page, mounted at /models/."""

from django.urls import path

from bounty.retraining import views

urlpatterns = [
    path("", views.model_page, name="retraining-models"),
    path("accuracy.png", views.accuracy_png, name="retraining-accuracy"),
    path("confusion.png", views.confusion_png, name="retraining-confusion"),
    path("mistakes.png", views.mistakes_png, name="retraining-mistakes"),
    path("collected.png", views.collected_png, name="retraining-collected"),
]
