"""The seed's stack, for the benchmark's comparison: the FastAPI design the seed's database has
(tables `users`, `roles`, `user_roles`; integer ids; passlib bcrypt; HS256 JWTs), served the way
that design serves it: uvicorn, synchronous SQLAlchemy sessions, a bearer dependency that decodes
the token and loads the caller, then the handler's own query.

Run by `bench/src/seed_stack.rs` (`scripts/bench.sh`), never deployed:
    SEED_DATABASE_URL=postgresql://… SEED_JWT_SECRET=… uvicorn app:app --workers 2
"""

import os
from datetime import datetime, timedelta, timezone

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from passlib.context import CryptContext
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Table, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Session, relationship, sessionmaker

SECRET = os.environ["SEED_JWT_SECRET"]
ALGORITHM = "HS256"
engine = create_engine(os.environ["SEED_DATABASE_URL"], pool_size=16, max_overflow=0, pool_pre_ping=True)
SessionLocal = sessionmaker(bind=engine, autoflush=False)
pwd = CryptContext(schemes=["bcrypt"], deprecated="auto")
oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/login")


class Base(DeclarativeBase):
    pass


user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("role_id", ForeignKey("roles.id"), primary_key=True),
)


class Role(Base):
    __tablename__ = "roles"
    id = Column(Integer, primary_key=True)
    name = Column(String(50), unique=True, nullable=False)


class User(Base):
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    email = Column(String(255), unique=True, nullable=False)
    username = Column(String(50), unique=True)
    full_name = Column(String(255))
    hashed_password = Column(String(255), nullable=False)
    is_active = Column(Boolean, default=True)
    created_at = Column(DateTime)
    roles = relationship(Role, secondary=user_roles, lazy="selectin")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    email: str
    username: str | None
    full_name: str | None
    is_active: bool
    created_at: datetime | None
    roles: list[str]


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def current_user(token: str = Depends(oauth2), db: Session = Depends(get_db)) -> User:
    refused = HTTPException(status.HTTP_401_UNAUTHORIZED, "Could not validate credentials",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = jwt.decode(token, SECRET, algorithms=[ALGORITHM])
    except jwt.PyJWTError:
        raise refused
    user = db.scalar(select(User).where(User.email == claims.get("sub")))
    if user is None or not user.is_active:
        raise refused
    return user


def out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, username=user.username, full_name=user.full_name,
                   is_active=user.is_active, created_at=user.created_at,
                   roles=[r.name for r in user.roles])


app = FastAPI(title="seed")


@app.post("/auth/login")
def login(form: OAuth2PasswordRequestForm = Depends(), db: Session = Depends(get_db)):
    user = db.scalar(select(User).where(User.email == form.username))
    if user is None or not pwd.verify(form.password, user.hashed_password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Incorrect email or password")
    exp = datetime.now(timezone.utc) + timedelta(minutes=30)
    token = jwt.encode({"sub": user.email, "exp": exp}, SECRET, algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "bearer"}


@app.get("/users/{user_id}", response_model=UserOut)
def read_user(user_id: int, caller: User = Depends(current_user), db: Session = Depends(get_db)):
    if caller.id != user_id and not any(r.name == "admin" for r in caller.roles):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Not enough permissions")
    user = db.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    return out(user)
